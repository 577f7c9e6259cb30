#include "common/redis/endpoint.h"

#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::redis {
namespace {

using testing::HasSubstr;
using testing::Not;

TEST(ParseEndpointUriTest, HostOnlyGetsDefaults) {
  auto endpoint = ParseEndpointUri("redis://cache.example.com");
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  EXPECT_EQ(endpoint->host, "cache.example.com");
  EXPECT_EQ(endpoint->port, 6379);
  EXPECT_FALSE(endpoint->db.has_value());
  EXPECT_EQ(endpoint->user, "");
  EXPECT_EQ(endpoint->password, "");
  EXPECT_FALSE(endpoint->tls);
}

TEST(ParseEndpointUriTest, FullTlsUri) {
  EndpointWarnings warnings;
  auto endpoint = ParseEndpointUri("rediss://alice:s3cret@src.example.com:6380/3", "", &warnings);
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  EXPECT_TRUE(endpoint->tls);
  EXPECT_EQ(endpoint->user, "alice");
  EXPECT_EQ(endpoint->password, "s3cret");
  EXPECT_EQ(endpoint->host, "src.example.com");
  EXPECT_EQ(endpoint->port, 6380);
  EXPECT_EQ(endpoint->db, 3);
  EXPECT_TRUE(warnings.password_in_uri);
}

TEST(ParseEndpointUriTest, TrailingSlashAndDbZero) {
  auto no_db = ParseEndpointUri("redis://h:1/");
  ASSERT_TRUE(no_db.ok()) << no_db.status();
  EXPECT_FALSE(no_db->db.has_value());
  auto db0 = ParseEndpointUri("redis://h/0");
  ASSERT_TRUE(db0.ok()) << db0.status();
  EXPECT_EQ(db0->db, 0);
  EXPECT_EQ(db0->port, 6379);
}

TEST(ParseEndpointUriTest, Ipv6InBrackets) {
  auto endpoint = ParseEndpointUri("redis://[::1]:6380/2");
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  EXPECT_EQ(endpoint->host, "::1");
  EXPECT_EQ(endpoint->port, 6380);
  EXPECT_EQ(endpoint->db, 2);
  EXPECT_EQ(endpoint->Address(), "[::1]:6380");
  auto no_port = ParseEndpointUri("redis://u@[fe80::1]");
  ASSERT_TRUE(no_port.ok()) << no_port.status();
  EXPECT_EQ(no_port->Address(), "[fe80::1]:6379");
}

TEST(ParseEndpointUriTest, PercentDecodesUserAndPassword) {
  auto endpoint = ParseEndpointUri("redis://us%3Aer:p%40ss%2Fw%25rd@h:7000");
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  EXPECT_EQ(endpoint->user, "us:er");
  EXPECT_EQ(endpoint->password, "p@ss/w%rd");
}

TEST(ParseEndpointUriTest, RawAtAndSlashInPasswordReachTheLastAt) {
  auto endpoint = ParseEndpointUri("redis://u:p@ss/x@h:7000/1");
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  EXPECT_EQ(endpoint->password, "p@ss/x");
  EXPECT_EQ(endpoint->host, "h");
  EXPECT_EQ(endpoint->db, 1);
}

TEST(ParseEndpointUriTest, PasswordFromEnvironmentWhenUriHasNone) {
  EndpointWarnings warnings;
  warnings.password_in_uri = true;  // Must be reset.
  auto endpoint = ParseEndpointUri("redis://alice@h", "fromenv", &warnings);
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  EXPECT_EQ(endpoint->user, "alice");
  EXPECT_EQ(endpoint->password, "fromenv");
  EXPECT_FALSE(warnings.password_in_uri);

  auto in_uri = ParseEndpointUri("redis://:inuri@h", "fromenv");
  ASSERT_TRUE(in_uri.ok()) << in_uri.status();
  EXPECT_EQ(in_uri->user, "");
  EXPECT_EQ(in_uri->password, "inuri");
}

TEST(ParseEndpointUriTest, SchemeIsCaseInsensitive) {
  auto endpoint = ParseEndpointUri("REDISS://h");
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  EXPECT_TRUE(endpoint->tls);
}

TEST(EndpointTest, RedactedHidesThePassword) {
  auto endpoint = ParseEndpointUri("rediss://alice:s3cret@h:6380/4");
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  EXPECT_EQ(endpoint->Redacted(), "rediss://alice:***@h:6380/4");
  auto ipv6 = ParseEndpointUri("redis://:pw@[::1]");
  ASSERT_TRUE(ipv6.ok()) << ipv6.status();
  EXPECT_EQ(ipv6->Redacted(), "redis://:***@[::1]:6379");
  auto plain = ParseEndpointUri("redis://h");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->Redacted(), "redis://h:6379");
  auto odd_user = ParseEndpointUri("redis://a%40b@h");
  ASSERT_TRUE(odd_user.ok()) << odd_user.status();
  EXPECT_EQ(odd_user->Redacted(), "redis://a%40b@h:6379");
}

TEST(EndpointTest, RedactedRoundTrips) {
  auto endpoint = ParseEndpointUri("redis://us%3Aer:pw@[::1]:7001/9");
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  auto again = ParseEndpointUri(endpoint->Redacted());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->user, "us:er");
  EXPECT_EQ(again->host, "::1");
  EXPECT_EQ(again->port, 7001);
  EXPECT_EQ(again->db, 9);
}

struct BadUri {
  const char* uri;
  const char* what;  // Expected in the message.
};

class BadUriTest : public testing::TestWithParam<BadUri> {};

TEST_P(BadUriTest, IsInvalidArgumentSayingWhatIsWrongWithoutThePassword) {
  const BadUri& c = GetParam();
  auto endpoint = ParseEndpointUri(c.uri, "envsecret");
  ASSERT_FALSE(endpoint.ok()) << c.uri;
  EXPECT_EQ(endpoint.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(endpoint.status().message());
  EXPECT_THAT(message, HasSubstr(c.what));
  EXPECT_THAT(message, Not(HasSubstr("hunter2")));
  EXPECT_THAT(message, Not(HasSubstr("hunter%32")));
  EXPECT_THAT(message, Not(HasSubstr("envsecret")));
}

INSTANTIATE_TEST_SUITE_P(
    Malformed, BadUriTest,
    testing::Values(BadUri{"http://u:hunter2@h", "unknown scheme \"http\""},
                    BadUri{"h:6379", "missing scheme"},
                    BadUri{"u:hunter2@h:6379", "missing scheme"},
                    BadUri{"redis:/u:hunter2@h", "missing scheme"},
                    BadUri{"redis://u:hunter2@", "missing host"},
                    BadUri{"redis://u:hunter2@:6379", "missing host"},
                    BadUri{"redis://", "missing host"},
                    BadUri{"redis://u:hunter2@h:x", "bad port \"x\""},
                    BadUri{"redis://u:hunter2@h:0", "bad port \"0\""},
                    BadUri{"redis://u:hunter2@h:65536", "bad port \"65536\""},
                    BadUri{"redis://u:hunter2@h:", "bad port \"\""},
                    BadUri{"redis://u:hunter2@h:-1", "bad port \"-1\""},
                    BadUri{"redis://u:hunter2@h:99999999999999999999", "bad port"},
                    BadUri{"redis://u:hunter2@h:6379/x", "bad db \"x\""},
                    BadUri{"redis://u:hunter2@h/-1", "bad db \"-1\""},
                    BadUri{"redis://u:hunter2@h/1/2", "bad db"},
                    BadUri{"redis://u:hunter2@h/99999999999", "bad db"},
                    BadUri{"redis://u:hunter2@[::1:6379", "unclosed bracket"},
                    BadUri{"redis://u:hunter2@[]:6379", "missing host"},
                    BadUri{"redis://u:hunter2@[::1]x", "unexpected \"x\""},
                    BadUri{"redis://u:hunter2@::1", "in brackets"},
                    BadUri{"redis://u:hunter2@h?ssl=true", "query"},
                    BadUri{"redis://u:hunter%32@h:x", "bad port"},
                    BadUri{"redis://u:hunter2%zz@h", "percent-encoding in the password"},
                    BadUri{"redis://u%:hunter2@h", "percent-encoding in the user"},
                    BadUri{"redis://u:hunter2@bad host", "bad host \"bad host\""}));

TEST(ParseEndpointUriTest, ErrorQuotesTheRedactedUri) {
  auto endpoint = ParseEndpointUri("redis://alice:hunter2@h:x");
  ASSERT_FALSE(endpoint.ok());
  EXPECT_THAT(endpoint.status().message(), HasSubstr("redis://alice:***@h:x"));
}

}  // namespace
}  // namespace ferry::redis
