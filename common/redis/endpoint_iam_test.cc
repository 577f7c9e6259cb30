// The URI options of ElastiCache IAM authentication: what they parse to, what they refuse, and
// that Redacted() (the form stored in jobs and sent to agents) carries them back unchanged.

#include <string>

#include "absl/status/status.h"
#include "common/redis/endpoint.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::redis {
namespace {

using testing::HasSubstr;
using testing::Not;

constexpr char kElastiCache[] =
    "rediss://ferry-user@master.my-group.abc123.use1.cache.amazonaws.com:6379";

TEST(EndpointIamTest, ParsesTheOptions) {
  auto endpoint =
      ParseEndpointUri(std::string(kElastiCache) + "?iam=1&cluster=My-Group&region=us-east-1",
                       /*env_password=*/"from-env");
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  EXPECT_TRUE(endpoint->iam.enabled);
  EXPECT_EQ(endpoint->iam.cluster, "my-group");
  EXPECT_EQ(endpoint->iam.region, "us-east-1");
  EXPECT_FALSE(endpoint->iam.serverless);
  EXPECT_EQ(endpoint->iam.reauth_interval, absl::Minutes(10));
  EXPECT_EQ(endpoint->user, "ferry-user");
  EXPECT_EQ(endpoint->password, "");  // The token is the password; the variable is not used.
  EXPECT_EQ(endpoint->port, 6379);
  EXPECT_EQ(endpoint->host, "master.my-group.abc123.use1.cache.amazonaws.com");
}

TEST(EndpointIamTest, RedactedRoundTrips) {
  for (const std::string& uri :
       {std::string(kElastiCache) + "/3?iam=1&cluster=my-group&region=eu-west-1",
        std::string("rediss://u@my-cache-x1.serverless.euw1.cache.amazonaws.com?iam=1"
                    "&cluster=my-cache&serverless=1&reauth=2s"),
        std::string("rediss://u@[::1]:7000?iam=true&cluster=c&reauth=90s")}) {
    auto endpoint = ParseEndpointUri(uri);
    ASSERT_TRUE(endpoint.ok()) << uri << ": " << endpoint.status();
    auto again = ParseEndpointUri(endpoint->Redacted());
    ASSERT_TRUE(again.ok()) << endpoint->Redacted() << ": " << again.status();
    EXPECT_EQ(again->Redacted(), endpoint->Redacted());
    EXPECT_TRUE(again->iam.enabled);
    EXPECT_EQ(again->iam.cluster, endpoint->iam.cluster);
    EXPECT_EQ(again->iam.region, endpoint->iam.region);
    EXPECT_EQ(again->iam.serverless, endpoint->iam.serverless);
    EXPECT_EQ(again->iam.reauth_interval, endpoint->iam.reauth_interval);
    EXPECT_EQ(again->db, endpoint->db);
  }
  auto short_reauth = ParseEndpointUri("rediss://u@h?iam=1&cluster=c&reauth=2s");
  ASSERT_TRUE(short_reauth.ok());
  EXPECT_EQ(short_reauth->iam.reauth_interval, absl::Seconds(2));
  EXPECT_EQ(short_reauth->Redacted(), "rediss://u@h:6379?iam=1&cluster=c&reauth=2s");
}

TEST(EndpointIamTest, WithoutOptionsNothingChanges) {
  auto endpoint = ParseEndpointUri("rediss://alice@h:6380/2", "pw");
  ASSERT_TRUE(endpoint.ok());
  EXPECT_FALSE(endpoint->iam.enabled);
  EXPECT_EQ(endpoint->password, "pw");
  EXPECT_EQ(endpoint->Redacted(), "rediss://alice:***@h:6380/2");
  auto off = ParseEndpointUri("rediss://alice@h?iam=0");
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off->iam.enabled);
}

struct BadIamUri {
  std::string uri;
  std::string message;
};

class BadIamUriTest : public testing::TestWithParam<BadIamUri> {};

TEST_P(BadIamUriTest, IsRefusedWithoutThePassword) {
  auto endpoint = ParseEndpointUri(GetParam().uri);
  ASSERT_FALSE(endpoint.ok()) << GetParam().uri;
  EXPECT_EQ(endpoint.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(endpoint.status().message(), HasSubstr(GetParam().message));
  EXPECT_THAT(endpoint.status().message(), Not(HasSubstr("hunter2")));
}

INSTANTIATE_TEST_SUITE_P(
    Malformed, BadIamUriTest,
    testing::Values(BadIamUri{"redis://u@h?iam=1&cluster=c", "needs rediss://"},
                    BadIamUri{"rediss://h?iam=1&cluster=c", "needs the IAM-enabled user"},
                    BadIamUri{"rediss://u:hunter2@h?iam=1&cluster=c", "remove the password"},
                    BadIamUri{"rediss://u@h?iam=1", "needs cluster="},
                    BadIamUri{"rediss://u@h?iam=1&cluster=", "bad cluster"},
                    BadIamUri{"rediss://u@h?iam=1&cluster=a/b", "bad cluster"},
                    BadIamUri{"rediss://u@h?iam=yes&cluster=c", "wants 1 or 0"},
                    BadIamUri{"rediss://u@h?cluster=c", "need iam=1"},
                    BadIamUri{"rediss://u@h?iam=1&cluster=c&region=US_EAST", "bad region"},
                    BadIamUri{"rediss://u@h?iam=1&cluster=c&reauth=20m", "bad reauth"},
                    BadIamUri{"rediss://u@h?iam=1&cluster=c&reauth=0s", "bad reauth"},
                    BadIamUri{"rediss://u@h?iam=1&cluster=c&reauth=soon", "bad reauth"},
                    BadIamUri{"rediss://u:hunter2@h?iam=1&tls=1", "unknown option \"tls\""},
                    BadIamUri{"rediss://u@h?iam=1&cluster=c#x", "fragments"}));

}  // namespace
}  // namespace ferry::redis
