// SigV4 against AWS's published examples: the SigV4 test suite (credentials AKIDEXAMPLE /
// wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, 20150830T123600Z, us-east-1, service "service"),
// and the S3 examples of "Authenticating Requests" (AKIAIOSFODNN7EXAMPLE, 20130524T000000Z):
// the header-signed GET and the presigned URL. Expected values are quoted from those pages.

#include "common/aws/sigv4.h"

#include "absl/time/civil_time.h"
#include "gtest/gtest.h"

namespace ferry::aws {
namespace {

constexpr char kSuiteKeyId[] = "AKIDEXAMPLE";
constexpr char kSuiteSecret[] = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
constexpr char kS3KeyId[] = "AKIAIOSFODNN7EXAMPLE";
constexpr char kS3Secret[] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
constexpr char kEmptyHash[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

const SigningScope kSuiteScope{"us-east-1", "service"};

absl::Time Utc(int y, int mo, int d, int h, int mi, int s) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, s), absl::UTCTimeZone());
}

const absl::Time kSuiteTime = Utc(2015, 8, 30, 12, 36, 0);

// A request of the suite: GET `/` on example.amazonaws.com with X-Amz-Date, the given query.
Request SuiteGet(std::vector<std::pair<std::string, std::string>> query) {
  Request request;
  request.query = std::move(query);
  request.headers = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}};
  request.payload_hash = kEmptyHash;
  return request;
}

// The last line of a string to sign: the hash of the canonical request.
std::string HashLine(const Signed& s) {
  return s.string_to_sign.substr(s.string_to_sign.rfind('\n') + 1);
}

TEST(SigV4SuiteTest, GetVanillaQuery) {
  const Signed s = Sign(SuiteGet({}), kSuiteSecret, kSuiteScope, kSuiteTime);
  EXPECT_EQ(s.canonical_request,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
            "host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(AuthorizationHeader(kSuiteKeyId, kSuiteScope, kSuiteTime, s),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date, "
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

TEST(SigV4SuiteTest, GetVanillaEmptyQueryKey) {
  const Signed s = Sign(SuiteGet({{"Param1", "value1"}}), kSuiteSecret, kSuiteScope, kSuiteTime);
  EXPECT_EQ(s.canonical_request,
            "GET\n/\nParam1=value1\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
            "host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "1e24db194ed7d0eec2de28d7369675a243488e08526e8c1c73571282f7c517ab");
  EXPECT_EQ(s.signature, "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb");
}

TEST(SigV4SuiteTest, GetVanillaQueryOrderKeyCase) {
  const Signed s = Sign(SuiteGet({{"Param2", "value2"}, {"Param1", "value1"}}), kSuiteSecret,
                        kSuiteScope, kSuiteTime);
  EXPECT_NE(s.canonical_request.find("\nParam1=value1&Param2=value2\n"), std::string::npos);
  EXPECT_EQ(s.signature, "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
}

TEST(SigV4SuiteTest, GetVanillaQueryUnreserved) {
  const std::string unreserved =
      "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  const Signed s =
      Sign(SuiteGet({{unreserved, unreserved}}), kSuiteSecret, kSuiteScope, kSuiteTime);
  EXPECT_EQ(s.signature, "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197");
}

TEST(SigV4SuiteTest, GetVanillaUtf8Query) {
  const Signed s = Sign(SuiteGet({{"\xe1\x88\xb4", "bar"}}), kSuiteSecret, kSuiteScope, kSuiteTime);
  EXPECT_NE(s.canonical_request.find("\n%E1%88%B4=bar\n"), std::string::npos);
  EXPECT_EQ(HashLine(s), "eb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073");
  EXPECT_EQ(s.signature, "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04");
}

TEST(SigV4SuiteTest, GetVanillaWithSessionToken) {
  Request request = SuiteGet({});
  request.headers.emplace_back("X-Amz-Security-Token",
                               "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267");
  const Signed s = Sign(request, kSuiteSecret, kSuiteScope, kSuiteTime);
  EXPECT_EQ(s.signed_headers, "host;x-amz-date;x-amz-security-token");
  EXPECT_EQ(HashLine(s), "067b36aa60031588cea4a4cde1f21215227a047690c72247f1d70b32fbbfad2b");
  EXPECT_EQ(s.signature, "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8");
}

// S3's "Signature Calculations for the Authorization Header", example "GET Object".
TEST(SigV4S3Test, HeaderSignedGetObject) {
  Request request;
  request.path = "/test.txt";
  request.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
                     {"Range", "bytes=0-9"},
                     {"x-amz-content-sha256", kEmptyHash},
                     {"x-amz-date", "20130524T000000Z"}};
  request.payload_hash = kEmptyHash;
  const absl::Time time = Utc(2013, 5, 24, 0, 0, 0);
  const Signed s = Sign(request, kS3Secret, {"us-east-1", "s3"}, time);
  EXPECT_EQ(HashLine(s), "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  EXPECT_EQ(s.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

// S3's "Authenticating Requests: Using Query Parameters", the presigned GET of test.txt.
TEST(SigV4S3Test, PresignedUrl) {
  Credentials credentials;
  credentials.access_key_id = kS3KeyId;
  credentials.secret_access_key = kS3Secret;
  EXPECT_EQ(PresignedQuery("examplebucket.s3.amazonaws.com", "/test.txt", {}, kUnsignedPayload,
                           credentials, {"us-east-1", "s3"}, Utc(2013, 5, 24, 0, 0, 0),
                           absl::Seconds(86400)),
            "X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
            "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
            "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
}

TEST(SigV4Test, EncodingAndDates) {
  EXPECT_EQ(UriEncode("a b/c+d=e~"), "a%20b%2Fc%2Bd%3De~");
  EXPECT_EQ(UriEncode("/a b/c", /*keep_slash=*/true), "/a%20b/c");
  EXPECT_EQ(CanonicalQueryString({{"b", "2"}, {"a", "x y"}, {"a", "1"}}), "a=1&a=x%20y&b=2");
  EXPECT_EQ(AmzDate(kSuiteTime), "20150830T123600Z");
  EXPECT_EQ(HexSha256(""), kEmptyHash);
}

}  // namespace
}  // namespace ferry::aws
