#include "common/aws/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ferry::aws {
namespace {

constexpr absl::string_view kAlgorithm = "AWS4-HMAC-SHA256";

std::string Hmac(absl::string_view key, absl::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<const char*>(out), len);
}

// The header value as SigV4 signs it: outer whitespace trimmed, inner runs of spaces as one.
std::string CanonicalHeaderValue(absl::string_view value) {
  value = absl::StripAsciiWhitespace(value);
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == ' ' && !out.empty() && out.back() == ' ') continue;
    out.push_back(c);
  }
  return out;
}

// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
std::string SigningKey(absl::string_view secret, const SigningScope& scope, absl::Time time) {
  const std::string date = absl::FormatTime("%Y%m%d", time, absl::UTCTimeZone());
  std::string key = Hmac(absl::StrCat("AWS4", secret), date);
  key = Hmac(key, scope.region);
  key = Hmac(key, scope.service);
  return Hmac(key, "aws4_request");
}

}  // namespace

std::string HexSha256(absl::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

std::string UriEncode(absl::string_view text, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

std::string CanonicalQueryString(std::vector<std::pair<std::string, std::string>> query) {
  for (auto& [name, value] : query) {
    name = UriEncode(name);
    value = UriEncode(value);
  }
  std::sort(query.begin(), query.end());
  return absl::StrJoin(query, "&", absl::PairFormatter("="));
}

std::string AmzDate(absl::Time time) {
  return absl::FormatTime("%Y%m%dT%H%M%SZ", time, absl::UTCTimeZone());
}

std::string CredentialScope(const SigningScope& scope, absl::Time time) {
  return absl::StrCat(absl::FormatTime("%Y%m%d", time, absl::UTCTimeZone()), "/", scope.region, "/",
                      scope.service, "/aws4_request");
}

Signed Sign(const Request& request, absl::string_view secret_access_key, const SigningScope& scope,
            absl::Time time) {
  // Names lowercased and sorted; a repeated header's values joined by ',' in their order.
  std::map<std::string, std::string> headers;
  for (const auto& [name, value] : request.headers) {
    std::string& joined = headers[absl::AsciiStrToLower(name)];
    if (!joined.empty()) joined += ',';
    joined += CanonicalHeaderValue(value);
  }
  Signed out;
  std::string canonical_headers;
  for (const auto& [name, value] : headers) {
    absl::StrAppend(&canonical_headers, name, ":", value, "\n");
    absl::StrAppend(&out.signed_headers, out.signed_headers.empty() ? "" : ";", name);
  }
  out.canonical_request = absl::StrCat(request.method, "\n", UriEncode(request.path, true), "\n",
                                       CanonicalQueryString(request.query), "\n", canonical_headers,
                                       "\n", out.signed_headers, "\n", request.payload_hash);
  out.string_to_sign =
      absl::StrCat(kAlgorithm, "\n", AmzDate(time), "\n", CredentialScope(scope, time), "\n",
                   HexSha256(out.canonical_request));
  out.signature =
      absl::BytesToHexString(Hmac(SigningKey(secret_access_key, scope, time), out.string_to_sign));
  return out;
}

std::string AuthorizationHeader(absl::string_view access_key_id, const SigningScope& scope,
                                absl::Time time, const Signed& signed_request) {
  return absl::StrCat(kAlgorithm, " Credential=", access_key_id, "/", CredentialScope(scope, time),
                      ", SignedHeaders=", signed_request.signed_headers,
                      ", Signature=", signed_request.signature);
}

std::string PresignedQuery(absl::string_view host, absl::string_view path,
                           std::vector<std::pair<std::string, std::string>> query,
                           absl::string_view payload_hash, const Credentials& credentials,
                           const SigningScope& scope, absl::Time time, absl::Duration expires) {
  query.emplace_back("X-Amz-Algorithm", std::string(kAlgorithm));
  query.emplace_back("X-Amz-Credential",
                     absl::StrCat(credentials.access_key_id, "/", CredentialScope(scope, time)));
  query.emplace_back("X-Amz-Date", AmzDate(time));
  query.emplace_back("X-Amz-Expires", absl::StrCat(absl::ToInt64Seconds(expires)));
  if (!credentials.session_token.empty()) {
    query.emplace_back("X-Amz-Security-Token", credentials.session_token);
  }
  query.emplace_back("X-Amz-SignedHeaders", "host");
  Request request;
  request.path = std::string(path);
  request.query = query;
  request.headers = {{"host", std::string(host)}};
  request.payload_hash = std::string(payload_hash);
  const Signed signed_request = Sign(request, credentials.secret_access_key, scope, time);
  return absl::StrCat(CanonicalQueryString(std::move(query)),
                      "&X-Amz-Signature=", signed_request.signature);
}

}  // namespace ferry::aws
