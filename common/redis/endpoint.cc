#include "common/redis/endpoint.h"

#include <algorithm>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/base/status_macros.h"

namespace ferry::redis {
namespace {

constexpr absl::string_view kSchemeSeparator = "://";
constexpr absl::string_view kWantSchemes = "want redis:// or rediss://";

// True for what RFC 3986 allows as a scheme; anything else before "://" is not one (and may be
// part of a password, so it is never quoted).
bool IsSchemeLike(absl::string_view text) {
  if (text.empty() || !absl::ascii_isalpha(text.front())) return false;
  for (char c : text) {
    if (!absl::ascii_isalnum(c) && c != '+' && c != '-' && c != '.') return false;
  }
  return true;
}

// Where the part after the scheme starts: after "://" when a scheme precedes it, else 0.
size_t AuthorityStart(absl::string_view uri) {
  const size_t separator = uri.find(kSchemeSeparator);
  if (separator == absl::string_view::npos || !IsSchemeLike(uri.substr(0, separator))) return 0;
  return separator + kSchemeSeparator.size();
}

// `uri` with everything from the first ':' of the user info to the last '@' replaced by `***`.
// Works on malformed input too, so error messages can quote it.
std::string RedactRawUri(absl::string_view uri) {
  const size_t start = AuthorityStart(uri);
  const size_t at = uri.rfind('@');
  if (at == absl::string_view::npos || at < start) return std::string(uri);
  const size_t colon = uri.find(':', start);
  if (colon == absl::string_view::npos || colon > at) return std::string(uri);
  return absl::StrCat(uri.substr(0, colon + 1), "***", uri.substr(at));
}

int HexValue(char c) {
  return absl::ascii_isdigit(c) ? c - '0' : absl::ascii_tolower(c) - 'a' + 10;
}

// Decodes %XX escapes; false on a truncated or non-hex escape.
bool PercentDecode(absl::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    if (!absl::ascii_isxdigit(in[i + 1]) || !absl::ascii_isxdigit(in[i + 2])) return false;
    out->push_back(static_cast<char>(HexValue(in[i + 1]) * 16 + HexValue(in[i + 2])));
    i += 2;
  }
  return true;
}

std::string PercentEncodeUser(absl::string_view user) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : user) {
    if (absl::ascii_isalnum(c) || absl::StrContains("-._~!$&'()*+,;=", static_cast<char>(c))) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

// Parses "redis://" or "rediss://" off the front of `*rest`.
absl::Status ParseScheme(absl::string_view* rest, Endpoint* endpoint) {
  const size_t start = AuthorityStart(*rest);
  if (start == 0) {
    return absl::InvalidArgumentError(absl::StrCat("missing scheme (", kWantSchemes, ")"));
  }
  const std::string scheme =
      absl::AsciiStrToLower(rest->substr(0, start - kSchemeSeparator.size()));
  if (scheme == "redis") {
    endpoint->tls = false;
  } else if (scheme == "rediss") {
    endpoint->tls = true;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown scheme \"", scheme, "\" (", kWantSchemes, ")"));
  }
  rest->remove_prefix(start);
  return absl::OkStatus();
}

// Parses `user[:password]@` off the front of `*rest`. The user info ends at the last '@', so
// a password may contain '@' and '/' unencoded. Messages never quote the password.
absl::Status ParseUserInfo(absl::string_view* rest, Endpoint* endpoint) {
  const size_t at = rest->rfind('@');
  if (at == absl::string_view::npos) return absl::OkStatus();
  const absl::string_view user_info = rest->substr(0, at);
  rest->remove_prefix(at + 1);
  const size_t colon = user_info.find(':');
  if (!PercentDecode(user_info.substr(0, colon), &endpoint->user)) {
    return absl::InvalidArgumentError("bad percent-encoding in the user name");
  }
  if (colon != absl::string_view::npos &&
      !PercentDecode(user_info.substr(colon + 1), &endpoint->password)) {
    return absl::InvalidArgumentError("bad percent-encoding in the password");
  }
  return absl::OkStatus();
}

bool IsHostNameChar(char c) { return absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_'; }

// Parses `[ipv6]` or `name` off the front of `*rest`.
absl::Status ParseHost(absl::string_view* rest, Endpoint* endpoint) {
  if (absl::StartsWith(*rest, "[")) {
    const size_t close = rest->find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError("unclosed bracket in the host");
    }
    const absl::string_view address = rest->substr(1, close - 1);
    if (address.empty()) return absl::InvalidArgumentError("missing host");
    if (!absl::StrContains(address, ':') ||
        address.find_first_not_of("0123456789abcdefABCDEF:.%") != absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("bad IPv6 address \"", address, "\""));
    }
    endpoint->host = std::string(address);
    rest->remove_prefix(close + 1);
    return absl::OkStatus();
  }
  const absl::string_view host_and_port = rest->substr(0, rest->find('/'));
  if (host_and_port.find(':') != host_and_port.rfind(':')) {
    return absl::InvalidArgumentError(
        "an IPv6 address must be in brackets, as in redis://[::1]:6379");
  }
  const absl::string_view name = rest->substr(0, rest->find_first_of(":/"));
  if (name.empty()) return absl::InvalidArgumentError("missing host");
  for (char c : name) {
    if (!IsHostNameChar(c)) {
      return absl::InvalidArgumentError(absl::StrCat("bad host \"", name, "\""));
    }
  }
  endpoint->host = std::string(name);
  rest->remove_prefix(name.size());
  return absl::OkStatus();
}

// Parses an optional `:port` off the front of `*rest`.
absl::Status ParsePort(absl::string_view* rest, Endpoint* endpoint) {
  if (!absl::StartsWith(*rest, ":")) return absl::OkStatus();
  rest->remove_prefix(1);
  const absl::string_view text = rest->substr(0, rest->find('/'));
  rest->remove_prefix(text.size());
  int port = 0;
  if (text.empty() || text.size() > 5 ||
      text.find_first_not_of("0123456789") != absl::string_view::npos ||
      !absl::SimpleAtoi(text, &port) || port < 1 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("bad port \"", text, "\" (want 1..65535)"));
  }
  endpoint->port = port;
  return absl::OkStatus();
}

// Parses what is left: nothing, "/" or "/db".
absl::Status ParseDb(absl::string_view rest, Endpoint* endpoint) {
  if (rest.empty() || rest == "/") return absl::OkStatus();
  if (!absl::StartsWith(rest, "/")) {
    return absl::InvalidArgumentError(absl::StrCat("unexpected \"", rest, "\" after the host"));
  }
  rest.remove_prefix(1);
  int db = 0;
  if (rest.find_first_not_of("0123456789") != absl::string_view::npos ||
      !absl::SimpleAtoi(rest, &db) || db < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad db \"", rest, "\" (want a non-negative integer)"));
  }
  endpoint->db = db;
  return absl::OkStatus();
}

constexpr absl::string_view kIamOptions = "iam, cluster, region, serverless, reauth";
// Re-AUTH at least once per token lifetime (15 minutes), and not in a busy loop.
constexpr absl::Duration kMinReauth = absl::Seconds(1);
constexpr absl::Duration kMaxReauth = absl::Minutes(14);

absl::StatusOr<bool> ParseFlagOption(absl::string_view name, absl::string_view value) {
  if (value == "1" || value == "true") return true;
  if (value == "0" || value == "false") return false;
  return absl::InvalidArgumentError(absl::StrCat(name, "= wants 1 or 0, not \"", value, "\""));
}

// One `name=value` of the query string into endpoint->iam.
absl::Status ParseOption(const std::string& name, const std::string& value, IamAuth* iam) {
  if (name == "iam") {
    FERRY_ASSIGN_OR_RETURN(iam->enabled, ParseFlagOption(name, value));
  } else if (name == "serverless") {
    FERRY_ASSIGN_OR_RETURN(iam->serverless, ParseFlagOption(name, value));
  } else if (name == "cluster") {
    iam->cluster = absl::AsciiStrToLower(value);
    if (iam->cluster.empty() || !std::all_of(value.begin(), value.end(), IsHostNameChar)) {
      return absl::InvalidArgumentError(absl::StrCat("bad cluster \"", value, "\""));
    }
  } else if (name == "region") {
    iam->region = value;
    if (value.empty() ||
        value.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("bad region \"", value, "\""));
    }
  } else if (name == "reauth") {
    if (!absl::ParseDuration(value, &iam->reauth_interval) || iam->reauth_interval < kMinReauth ||
        iam->reauth_interval > kMaxReauth) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad reauth \"", value, "\" (want a duration from 1s to 14m, such as 10m)"));
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown option \"", name, "\" in the query string (known: ", kIamOptions, ")"));
  }
  return absl::OkStatus();
}

// Parses the query string (`iam=1&cluster=...`) and checks what IAM authentication needs.
absl::Status ParseOptions(absl::string_view query, Endpoint* endpoint) {
  bool iam_detail = false;
  for (absl::string_view pair : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    const size_t eq = pair.find('=');
    std::string name;
    std::string value;
    if (!PercentDecode(pair.substr(0, eq), &name) ||
        (eq != absl::string_view::npos && !PercentDecode(pair.substr(eq + 1), &value))) {
      return absl::InvalidArgumentError("bad percent-encoding in the options");
    }
    FERRY_RETURN_IF_ERROR(ParseOption(name, value, &endpoint->iam));
    iam_detail = iam_detail || name != "iam";
  }
  const IamAuth& iam = endpoint->iam;
  if (!iam.enabled) {
    if (iam_detail) return absl::InvalidArgumentError("cluster=, region=, ... need iam=1");
    return absl::OkStatus();
  }
  if (!endpoint->tls) {
    return absl::InvalidArgumentError(
        "iam=1 needs rediss:// (ElastiCache takes IAM tokens over "
        "TLS only)");
  }
  if (endpoint->user.empty()) {
    return absl::InvalidArgumentError(
        "iam=1 needs the IAM-enabled user, as in "
        "rediss://USER@host?iam=1&cluster=NAME");
  }
  if (!endpoint->password.empty()) {
    return absl::InvalidArgumentError("iam=1 signs its own token: remove the password");
  }
  if (iam.cluster.empty()) {
    return absl::InvalidArgumentError(
        "iam=1 needs cluster=<replication group id or serverless cache name>");
  }
  return absl::OkStatus();
}

absl::Status ParseInto(absl::string_view uri, Endpoint* endpoint) {
  absl::string_view rest = uri;
  FERRY_RETURN_IF_ERROR(ParseScheme(&rest, endpoint));
  FERRY_RETURN_IF_ERROR(ParseUserInfo(&rest, endpoint));
  if (rest.find('#') != absl::string_view::npos) {
    return absl::InvalidArgumentError("fragments are not supported");
  }
  absl::string_view query;
  if (const size_t mark = rest.find('?'); mark != absl::string_view::npos) {
    query = rest.substr(mark + 1);
    rest = rest.substr(0, mark);
  }
  FERRY_RETURN_IF_ERROR(ParseHost(&rest, endpoint));
  FERRY_RETURN_IF_ERROR(ParsePort(&rest, endpoint));
  FERRY_RETURN_IF_ERROR(ParseDb(rest, endpoint));
  return ParseOptions(query, endpoint);
}

// The query string that Redacted() appends: what ParseOptions reads back.
std::string IamOptions(const IamAuth& iam) {
  if (!iam.enabled) return "";
  std::string out = absl::StrCat("?iam=1&cluster=", iam.cluster);
  if (!iam.region.empty()) absl::StrAppend(&out, "&region=", iam.region);
  if (iam.serverless) absl::StrAppend(&out, "&serverless=1");
  if (iam.reauth_interval != IamAuth().reauth_interval) {
    absl::StrAppend(&out, "&reauth=", absl::FormatDuration(iam.reauth_interval));
  }
  return out;
}

}  // namespace

std::string Endpoint::Redacted() const {
  std::string user_info;
  if (!user.empty() || !password.empty()) {
    user_info = absl::StrCat(PercentEncodeUser(user), password.empty() ? "" : ":***", "@");
  }
  return absl::StrCat(tls ? "rediss://" : "redis://", user_info, Address(),
                      db.has_value() ? absl::StrCat("/", *db) : "", IamOptions(iam));
}

std::optional<HostPort> ParseAddress(absl::string_view address) {
  const size_t colon = address.rfind(':');
  HostPort out;
  if (colon == absl::string_view::npos || !absl::SimpleAtoi(address.substr(colon + 1), &out.port) ||
      out.port <= 0 || out.port > 65535) {
    return std::nullopt;
  }
  absl::string_view host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  out.host = std::string(host);
  return out;
}

std::string Endpoint::Address() const {
  if (absl::StrContains(host, ':')) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<Endpoint> ParseEndpointUri(absl::string_view uri, absl::string_view env_password,
                                          EndpointWarnings* warnings) {
  Endpoint endpoint;
  if (absl::Status status = ParseInto(uri, &endpoint); !status.ok()) {
    // Only the redacted form of the URI is quoted; no part of the message comes from the
    // password.
    return absl::InvalidArgumentError(
        absl::StrCat("bad Redis URI \"", RedactRawUri(uri), "\": ", status.message()));
  }
  if (warnings != nullptr) warnings->password_in_uri = !endpoint.password.empty();
  if (endpoint.password.empty() && !endpoint.iam.enabled) {
    endpoint.password = std::string(env_password);
  }
  return endpoint;
}

}  // namespace ferry::redis
