#include "common/aws/credentials.h"

#include <cstdlib>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/aws/http_client.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"

namespace ferry::aws {
namespace {

constexpr absl::string_view kTokenPath = "/latest/api/token";
constexpr absl::string_view kRolesPath = "/latest/meta-data/iam/security-credentials/";
constexpr absl::string_view kNoCredentials =
    "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN "
    "for temporary ones), or run on an EC2 instance with an IAM role";

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

// The string value of `"field"` in a flat JSON object; nullopt when absent. Handles the escapes
// IMDS may send (\" \\ \/); others are kept as they are.
std::optional<std::string> JsonStringField(absl::string_view json, absl::string_view field) {
  const std::string quoted = absl::StrCat("\"", field, "\"");
  size_t pos = json.find(quoted);
  if (pos == absl::string_view::npos) return std::nullopt;
  absl::string_view rest = absl::StripLeadingAsciiWhitespace(json.substr(pos + quoted.size()));
  if (!absl::ConsumePrefix(&rest, ":")) return std::nullopt;
  rest = absl::StripLeadingAsciiWhitespace(rest);
  if (!absl::ConsumePrefix(&rest, "\"")) return std::nullopt;
  std::string out;
  for (size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] == '"') return out;
    if (rest[i] == '\\' && i + 1 < rest.size()) {
      const char next = rest[++i];
      if (next != '"' && next != '\\' && next != '/') out.push_back('\\');
      out.push_back(next);
      continue;
    }
    out.push_back(rest[i]);
  }
  return std::nullopt;
}

absl::StatusOr<Credentials> FromEnvironment() {
  Credentials out;
  out.access_key_id = Env("AWS_ACCESS_KEY_ID");
  out.secret_access_key = Env("AWS_SECRET_ACCESS_KEY");
  out.session_token = Env("AWS_SESSION_TOKEN");
  if (out.access_key_id.empty() && out.secret_access_key.empty()) {
    return absl::NotFoundError("no credentials in the environment");
  }
  if (out.access_key_id.empty() || out.secret_access_key.empty()) {
    return absl::FailedPreconditionError(
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together");
  }
  return out;
}

}  // namespace

absl::StatusOr<Credentials> ParseImdsCredentials(absl::string_view json) {
  const std::optional<std::string> code = JsonStringField(json, "Code");
  if (code.has_value() && *code != "Success") {
    return absl::FailedPreconditionError(
        absl::StrCat("the instance metadata service refused the role's credentials: ", *code));
  }
  Credentials out;
  std::optional<std::string> expiration;
  for (auto [name, field] :
       {std::pair{"AccessKeyId", &out.access_key_id},
        std::pair{"SecretAccessKey", &out.secret_access_key},
        std::pair{"Token", &out.session_token}, std::pair{"Expiration", &expiration.emplace()}}) {
    std::optional<std::string> value = JsonStringField(json, name);
    if (!value.has_value() || value->empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the role's credentials from the instance metadata service have no ", name));
    }
    *field = *std::move(value);
  }
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, *expiration, &out.expiration, &error)) {
    return absl::FailedPreconditionError(
        absl::StrCat("bad Expiration \"", *expiration, "\" from the instance metadata service"));
  }
  return out;
}

CredentialsProvider::CredentialsProvider(CredentialsOptions options)
    : options_(std::move(options)) {}

CredentialsProvider& CredentialsProvider::Default() {
  static CredentialsProvider* provider = [] {
    CredentialsOptions options;
    if (std::string endpoint = Env("AWS_EC2_METADATA_SERVICE_ENDPOINT"); !endpoint.empty()) {
      options.imds_endpoint = endpoint;
    }
    if (absl::EqualsIgnoreCase(Env("AWS_EC2_METADATA_DISABLED"), "true")) {
      options.imds_endpoint.clear();
    }
    return new CredentialsProvider(std::move(options));
  }();
  return *provider;
}

absl::StatusOr<Credentials> CredentialsProvider::FetchFromImds() const {
  const std::string& base = options_.imds_endpoint;
  const absl::Duration timeout = options_.imds_timeout;
  FERRY_ASSIGN_OR_RETURN(
      HttpResponse token,
      SendHttpRequest(base, "PUT", kTokenPath, {{"X-aws-ec2-metadata-token-ttl-seconds", "21600"}},
                      timeout));
  if (token.status != 200 || token.body.empty()) {
    return absl::UnavailableError(absl::StrCat("PUT ", kTokenPath, ": HTTP ", token.status));
  }
  const std::vector<std::pair<std::string, std::string>> auth = {
      {"X-aws-ec2-metadata-token", token.body}};
  FERRY_ASSIGN_OR_RETURN(HttpResponse roles,
                         SendHttpRequest(base, "GET", kRolesPath, auth, timeout));
  if (roles.status == 404) {
    return absl::FailedPreconditionError("the instance has no IAM role (instance profile)");
  }
  if (roles.status != 200) {
    return absl::UnavailableError(absl::StrCat("GET ", kRolesPath, ": HTTP ", roles.status));
  }
  const std::string role(
      absl::StripAsciiWhitespace(absl::string_view(roles.body).substr(0, roles.body.find('\n'))));
  if (role.empty()) return absl::FailedPreconditionError("the instance has no IAM role");
  const std::string path = absl::StrCat(kRolesPath, role);
  FERRY_ASSIGN_OR_RETURN(HttpResponse credentials,
                         SendHttpRequest(base, "GET", path, auth, timeout));
  if (credentials.status != 200) {
    return absl::UnavailableError(absl::StrCat("GET ", path, ": HTTP ", credentials.status));
  }
  absl::StatusOr<Credentials> parsed = ParseImdsCredentials(credentials.body);
  if (!parsed.ok()) return Annotate(parsed.status(), absl::StrCat("role ", role));
  return parsed;
}

absl::StatusOr<Credentials> CredentialsProvider::Get() {
  if (options_.from_environment) {
    absl::StatusOr<Credentials> env = FromEnvironment();
    if (env.ok() || !absl::IsNotFound(env.status())) return env;
  }
  if (options_.imds_endpoint.empty()) return absl::FailedPreconditionError(kNoCredentials);
  absl::MutexLock lock(&mu_);
  const absl::Time now = options_.now();
  if (cached_.has_value() && now < cached_->expiration - options_.refresh_before) return *cached_;
  if (!cached_.has_value() || now - last_fetch_ >= options_.refetch_interval) {
    last_fetch_ = now;
    absl::StatusOr<Credentials> fetched = FetchFromImds();
    if (fetched.ok()) {
      cached_ = *std::move(fetched);
      return *cached_;
    }
    const std::string why = absl::StrCat("instance metadata service at ", options_.imds_endpoint,
                                         ": ", fetched.status().message());
    if (!cached_.has_value()) {
      return absl::FailedPreconditionError(absl::StrCat(kNoCredentials, " (", why, ")"));
    }
    FERRY_LOG(Warning) << "cannot refresh the instance role's AWS credentials (" << why
                       << "); using the cached ones until they expire";
  }
  if (now < cached_->expiration - options_.min_validity) return *cached_;
  return absl::UnavailableError(
      "the instance role's AWS credentials expired and the instance "
      "metadata service gave no new ones");
}

}  // namespace ferry::aws
