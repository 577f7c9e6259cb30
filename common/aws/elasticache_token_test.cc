// The ElastiCache IAM token: the request AWS's own example signs (aws-samples'
// elasticache-iam-auth-demo-app, IAMAuthTokenRequest.java: GET http://<cache>/ with Action=connect
// and User, service elasticache, 900 s, the empty body's hash), without "http://". The canonical
// request is written out here by hand, and the signing under it is the one sigv4_test.cc checks
// against AWS's published examples.

#include "common/aws/elasticache_token.h"

#include "absl/strings/match.h"
#include "absl/time/civil_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::aws {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

const absl::Time kTime =
    absl::FromCivil(absl::CivilSecond(2015, 8, 30, 12, 36, 0), absl::UTCTimeZone());

Credentials Example(std::string session_token = "") {
  Credentials credentials;
  credentials.access_key_id = "AKIDEXAMPLE";
  credentials.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  credentials.session_token = std::move(session_token);
  return credentials;
}

ElastiCacheTokenRequest Alice(bool serverless = false) {
  ElastiCacheTokenRequest request;
  request.user = "alice";
  request.cache_name = "my-group";
  request.region = "us-east-1";
  request.serverless = serverless;
  return request;
}

std::string SignatureOf(const std::string& token) {
  const std::string marker = "&X-Amz-Signature=";
  return token.substr(token.find(marker) + marker.size());
}

TEST(ElastiCacheTokenTest, IsThePresignedConnectRequestWithoutScheme) {
  const std::string token = ElastiCacheAuthToken(Alice(), Example(), kTime);
  const std::string query =
      "Action=connect&User=alice&X-Amz-Algorithm=AWS4-HMAC-SHA256"
      "&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Felasticache%2Faws4_request"
      "&X-Amz-Date=20150830T123600Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host";
  EXPECT_THAT(token, StartsWith("my-group/?" + query + "&X-Amz-Signature="));
  EXPECT_THAT(token, Not(HasSubstr("http")));

  Request request;
  request.path = "/";
  request.query = {{"Action", "connect"},
                   {"User", "alice"},
                   {"X-Amz-Algorithm", "AWS4-HMAC-SHA256"},
                   {"X-Amz-Credential", "AKIDEXAMPLE/20150830/us-east-1/elasticache/aws4_request"},
                   {"X-Amz-Date", "20150830T123600Z"},
                   {"X-Amz-Expires", "900"},
                   {"X-Amz-SignedHeaders", "host"}};
  request.headers = {{"host", "my-group"}};
  request.payload_hash = HexSha256("");
  const Signed expected =
      Sign(request, Example().secret_access_key, {"us-east-1", "elasticache"}, kTime);
  EXPECT_EQ(expected.canonical_request,
            "GET\n/\n" + query +
                "\nhost:my-group\n\nhost\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(SignatureOf(token), expected.signature);
  EXPECT_EQ(SignatureOf(token).size(), 64u);
}

TEST(ElastiCacheTokenTest, ServerlessSignsTheResourceType) {
  const std::string token = ElastiCacheAuthToken(Alice(/*serverless=*/true), Example(), kTime);
  EXPECT_THAT(token,
              StartsWith("my-group/?Action=connect&ResourceType=ServerlessCache&User=alice&"));
  EXPECT_NE(SignatureOf(token), SignatureOf(ElastiCacheAuthToken(Alice(), Example(), kTime)));
}

TEST(ElastiCacheTokenTest, SessionTokenAndUserAreEncoded) {
  ElastiCacheTokenRequest request = Alice();
  request.user = "app user";
  const std::string token = ElastiCacheAuthToken(request, Example("FwoG/a+b=="), kTime);
  EXPECT_THAT(token, HasSubstr("&User=app%20user&"));
  EXPECT_THAT(token, HasSubstr("&X-Amz-Expires=900&X-Amz-Security-Token=FwoG%2Fa%2Bb%3D%3D"
                               "&X-Amz-SignedHeaders=host&"));
}

TEST(ElastiCacheTokenTest, EachSecondSignsItsOwnToken) {
  const std::string now = ElastiCacheAuthToken(Alice(), Example(), kTime);
  EXPECT_EQ(now, ElastiCacheAuthToken(Alice(), Example(), kTime));
  EXPECT_NE(now, ElastiCacheAuthToken(Alice(), Example(), kTime + absl::Seconds(1)));
}

}  // namespace
}  // namespace ferry::aws
