// The URI parser (common/redis/endpoint.h): any text is refused or read into an endpoint whose
// redacted form and address parse back to the same endpoint, and no error quotes the password.

#include <fuzzer/FuzzedDataProvider.h>

#include <string>

#include "common/redis/endpoint.h"
#include "fuzz/fuzz_support.h"

namespace ferry::fuzz {
namespace {

// The password a URI carries, found the simple way: after the first ':' that follows "://" (or
// the start), up to the last '@'.
std::string RawPassword(const std::string& uri) {
  const size_t scheme = uri.find("://");
  const size_t start = scheme == std::string::npos ? 0 : scheme + 3;
  const size_t at = uri.rfind('@');
  if (at == std::string::npos || at < start) return "";
  const size_t colon = uri.find(':', start);
  if (colon == std::string::npos || colon > at) return "";
  return uri.substr(colon + 1, at - colon - 1);
}

void CheckRoundTrip(const redis::Endpoint& endpoint) {
  Check(endpoint.port >= 1 && endpoint.port <= 65535, "port out of range");
  Check(!endpoint.db.has_value() || *endpoint.db >= 0, "negative db");
  const std::string redacted = endpoint.Redacted();
  redis::Endpoint other_password = endpoint;
  other_password.password = endpoint.password.empty() ? "" : endpoint.password + "x";
  Check(other_password.Redacted() == redacted, "Redacted() depends on the password");
  absl::StatusOr<redis::Endpoint> again = redis::ParseEndpointUri(redacted);
  Check(again.ok(), "Redacted() does not parse back");
  Check(again->host == endpoint.host && again->port == endpoint.port && again->db == endpoint.db &&
            again->user == endpoint.user && again->tls == endpoint.tls &&
            again->password.empty() == endpoint.password.empty() &&
            again->iam.enabled == endpoint.iam.enabled &&
            again->iam.cluster == endpoint.iam.cluster &&
            again->iam.region == endpoint.iam.region &&
            again->iam.serverless == endpoint.iam.serverless &&
            again->iam.reauth_interval == endpoint.iam.reauth_interval,
        "Redacted() parses back to another endpoint");
  std::optional<redis::HostPort> address = redis::ParseAddress(endpoint.Address());
  Check(address.has_value() && address->host == endpoint.host && address->port == endpoint.port,
        "Address() does not parse back");
}

}  // namespace
}  // namespace ferry::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using ferry::fuzz::Check;
  FuzzedDataProvider input(data, size);
  const std::string env_password = input.ConsumeRandomLengthString(32);
  const std::string uri = input.ConsumeRemainingBytesAsString();
  ferry::redis::EndpointWarnings warnings;
  absl::StatusOr<ferry::redis::Endpoint> endpoint =
      ferry::redis::ParseEndpointUri(uri, env_password, &warnings);
  (void)ferry::redis::ParseAddress(uri);
  if (endpoint.ok()) {
    Check(warnings.password_in_uri == !ferry::fuzz::RawPassword(uri).empty(),
          "password_in_uri wrong");
    ferry::fuzz::CheckRoundTrip(*endpoint);
    return 0;
  }
  Check(endpoint.status().code() == absl::StatusCode::kInvalidArgument, "not INVALID_ARGUMENT");
  // Errors do not depend on the password in the URI (beyond its percent-encoding): the same URI
  // with another password of the same length fails with the same message.
  const std::string password = ferry::fuzz::RawPassword(uri);
  const std::string message(endpoint.status().message());
  if (!password.empty() && message.find("percent-encoding in the password") == std::string::npos) {
    std::string other_uri = uri;
    other_uri.replace(uri.rfind('@') - password.size(), password.size(), password.size(), 'Z');
    absl::StatusOr<ferry::redis::Endpoint> other = ferry::redis::ParseEndpointUri(other_uri);
    Check(!other.ok() && other.status().message() == message, "an error depends on the password");
  }
  // Errors do not depend on the password from the environment.
  absl::StatusOr<ferry::redis::Endpoint> other = ferry::redis::ParseEndpointUri(uri, "other");
  Check(!other.ok() && other.status().message() == message, "an error depends on the env password");
  return 0;
}
