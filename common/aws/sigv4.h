#pragma once

// AWS Signature Version 4 (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv.html):
// the canonical request, the string to sign, the signing key and the signature, for requests
// signed in headers and for presigned URLs. Pure functions: no clock, no I/O, no credentials
// lookup (credentials.h finds those). Every result that holds a signature or a session token
// is a secret: never log it.

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace ferry::aws {

// An access key, its secret and (for temporary credentials) the session token.
struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // Empty for long-term keys.
  // When temporary credentials stop working; InfiniteFuture() for long-term keys.
  absl::Time expiration = absl::InfiniteFuture();
};

// Where a signature is valid: `<date>/<region>/<service>/aws4_request`.
struct SigningScope {
  std::string region;   // "us-east-1"
  std::string service;  // "elasticache", "s3"
};

// The payload hash of a request whose body is not signed (S3 presigned URLs).
inline constexpr absl::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";

// One request to sign. Query parameters and headers are given decoded; the signer encodes them.
struct Request {
  std::string method = "GET";
  // The absolute path, already in the form it is sent ("/", "/test.txt"); each character outside
  // the unreserved set (and '/') is percent-encoded once.
  std::string path = "/";
  std::vector<std::pair<std::string, std::string>> query;
  // Every header to sign, `host` included (names in any case; values are trimmed).
  std::vector<std::pair<std::string, std::string>> headers;
  // Lowercase hex SHA-256 of the body (HexSha256("") for none), or kUnsignedPayload.
  std::string payload_hash;
};

// What signing produced, each step kept so tests can compare them with published examples.
struct Signed {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signed_headers;  // "host;x-amz-date"
  std::string signature;       // Lowercase hex.
};

// Lowercase hex SHA-256 of `data`.
std::string HexSha256(absl::string_view data);

// SigV4's URI encoding: A-Z a-z 0-9 - _ . ~ as they are, every other byte as %XX (uppercase hex);
// '/' too unless `keep_slash`.
std::string UriEncode(absl::string_view text, bool keep_slash = false);

// `name=value` pairs encoded with UriEncode, sorted by name then value, joined with '&'.
std::string CanonicalQueryString(std::vector<std::pair<std::string, std::string>> query);

// `20150830T123600Z` (X-Amz-Date) for `time` in UTC.
std::string AmzDate(absl::Time time);

// `<date>/<region>/<service>/aws4_request` for `time`.
std::string CredentialScope(const SigningScope& scope, absl::Time time);

// Signs `request` as made at `time`. The caller adds what the service wants signed (x-amz-date,
// x-amz-security-token...) to request.headers or request.query first.
Signed Sign(const Request& request, absl::string_view secret_access_key, const SigningScope& scope,
            absl::Time time);

// The Authorization header's value for a signed request.
std::string AuthorizationHeader(absl::string_view access_key_id, const SigningScope& scope,
                                absl::Time time, const Signed& signed_request);

// A presigned GET of `https?://host/path?query`: adds X-Amz-Algorithm, X-Amz-Credential,
// X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders=host (and X-Amz-Security-Token for temporary
// credentials) to `query`, signs with `payload_hash`, and returns the canonical query string
// with `&X-Amz-Signature=...` last. A secret: it authenticates as the credentials' owner.
std::string PresignedQuery(absl::string_view host, absl::string_view path,
                           std::vector<std::pair<std::string, std::string>> query,
                           absl::string_view payload_hash, const Credentials& credentials,
                           const SigningScope& scope, absl::Time time, absl::Duration expires);

}  // namespace ferry::aws
