#include "server/job_spec.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/base/status_macros.h"
#include "proto/wire/endpoint.h"

namespace ferry::server {
namespace {

// Passwords shorter than this are not scrubbed: replacing one or two characters everywhere
// would garble messages and hide nothing.
constexpr size_t kMinScrubbedLength = 3;

// Splits `scheme://[user[:password]@]rest` and rebuilds it without the password. Returns the
// password found, if any.
std::string TakePasswordFromUri(std::string* uri) {
  const size_t scheme_end = uri->find("://");
  if (scheme_end == std::string::npos) return "";
  const size_t start = scheme_end + 3;
  const size_t path = uri->find('/', start);
  const size_t at = uri->rfind('@', path == std::string::npos ? std::string::npos : path);
  if (at == std::string::npos || at < start) return "";
  const std::string userinfo = uri->substr(start, at - start);
  const size_t colon = userinfo.find(':');
  if (colon == std::string::npos) return "";
  const std::string user = userinfo.substr(0, colon);
  std::string password = userinfo.substr(colon + 1);
  *uri = absl::StrCat(uri->substr(0, start), user.empty() ? "" : absl::StrCat(user, "@"),
                      uri->substr(at + 1));
  return password;
}

absl::Status NormalizeEndpoint(absl::string_view side, ferry::v1::EndpointSpec* endpoint) {
  if (endpoint->uri().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(side, " URI is required"));
  }
  std::string uri = endpoint->uri();
  std::string password = TakePasswordFromUri(&uri);
  if (!password.empty() && endpoint->password().empty()) endpoint->set_password(password);
  endpoint->set_uri(uri);
  // The one parse of a submitted URI in the controller: a spec it accepts parses everywhere.
  absl::StatusOr<redis::Endpoint> parsed = wire::EndpointFromSpec(*endpoint);
  if (!parsed.ok()) return Annotate(parsed.status(), side);
  return absl::OkStatus();
}

}  // namespace

absl::Status NormalizeJobSpec(ferry::v1::JobSpec* spec) {
  FERRY_RETURN_IF_ERROR(NormalizeEndpoint("source", spec->mutable_source()));
  FERRY_RETURN_IF_ERROR(NormalizeEndpoint("target", spec->mutable_target()));
  for (int db : spec->dbs()) {
    if (db < 0) return absl::InvalidArgumentError(absl::StrCat("invalid database ", db));
  }
  if (spec->has_target_db() && spec->target_db() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("invalid target database ", spec->target_db()));
  }
  if (spec->batch_keys() < 0) return absl::InvalidArgumentError("batch_keys must be >= 0");
  if (spec->rate_limit() < 0) return absl::InvalidArgumentError("rate_limit must be >= 0");
  if (spec->rate_limit_bytes() < 0) {
    return absl::InvalidArgumentError("rate_limit_bytes must be >= 0");
  }
  if (spec->shards() < 0) return absl::InvalidArgumentError("shards must be >= 0");
  if (spec->parallel() < 0) return absl::InvalidArgumentError("parallel must be >= 0");
  if (!ferry::v1::CopyPath_IsValid(spec->copy_path())) {
    return absl::InvalidArgumentError("invalid copy_path");
  }
  if (!ferry::v1::OnConflict_IsValid(spec->on_conflict())) {
    return absl::InvalidArgumentError("invalid on_conflict");
  }
  if (!ferry::v1::ReadFrom_IsValid(spec->read_from())) {
    return absl::InvalidArgumentError("invalid read_from");
  }
  if (spec->live()) {
    if (spec->kind() == ferry::v1::JOB_KIND_VERIFY) {
      return absl::InvalidArgumentError("a verify job cannot be live");
    }
    if (spec->dry_run()) return absl::InvalidArgumentError("a dry run cannot be live");
    if (spec->on_conflict() != ferry::v1::ON_CONFLICT_REPLACE) {
      return absl::InvalidArgumentError(
          "a live job replaces target keys (the source's writes win): on_conflict must be "
          "replace");
    }
  }
  return absl::OkStatus();
}

ferry::v1::JobSpec RedactedSpec(const ferry::v1::JobSpec& spec) {
  ferry::v1::JobSpec out = spec;
  out.mutable_source()->clear_password();
  out.mutable_target()->clear_password();
  return out;
}

std::string ScrubSecrets(absl::string_view message, const ferry::v1::JobSpec& spec) {
  std::string out(message);
  for (const std::string* password : {&spec.source().password(), &spec.target().password()}) {
    if (password->size() >= kMinScrubbedLength) {
      out = absl::StrReplaceAll(out, {{*password, "***"}});
    }
  }
  return out;
}

}  // namespace ferry::server
