// Credentials from the environment and from an instance role through a fake IMDSv2 on loopback,
// with a fake clock: cached while fresh, fetched again before they expire, kept while IMDS is
// down until they are about to expire. No message ever holds a secret.

#include "common/aws/credentials.h"

#include <cstdlib>

#include "common/testing/fake_imds.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::aws {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

Credentials RoleCredentials(std::string id, absl::Time expiration) {
  Credentials out;
  out.access_key_id = std::move(id);
  out.secret_access_key = "role-secret/with+chars";
  out.session_token = "role-session-token";
  out.expiration = expiration;
  return out;
}

// Clears the AWS variables for one test and puts back what was there.
class CredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : kNames) {
      const char* value = std::getenv(name);
      if (value != nullptr) saved_.emplace_back(name, value);
      unsetenv(name);
    }
  }
  void TearDown() override {
    for (const char* name : kNames) unsetenv(name);
    for (const auto& [name, value] : saved_) setenv(name.c_str(), value.c_str(), 1);
  }

  CredentialsOptions ImdsOptions(const std::string& endpoint) {
    CredentialsOptions options;
    options.imds_endpoint = endpoint;
    options.now = [this] { return now_; };
    return options;
  }

  static constexpr const char* kNames[] = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                           "AWS_SESSION_TOKEN"};
  std::vector<std::pair<std::string, std::string>> saved_;
  absl::Time now_ = absl::FromUnixSeconds(1800000000);
};

TEST_F(CredentialsTest, EnvironmentComesFirst) {
  setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "env-secret", 1);
  setenv("AWS_SESSION_TOKEN", "env-token", 1);
  auto imds = testing::FakeImds::Start();
  ASSERT_TRUE(imds.ok()) << imds.status();
  (*imds)->SetRole("role", RoleCredentials("AKIDROLE", now_ + absl::Hours(6)));
  CredentialsProvider provider(ImdsOptions((*imds)->endpoint()));
  absl::StatusOr<Credentials> got = provider.Get();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->access_key_id, "AKIDENV");
  EXPECT_EQ(got->secret_access_key, "env-secret");
  EXPECT_EQ(got->session_token, "env-token");
  EXPECT_EQ((*imds)->credential_fetches(), 0);

  unsetenv("AWS_SECRET_ACCESS_KEY");
  got = provider.Get();
  EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(CredentialsTest, RoleCredentialsAreCachedAndRefreshedBeforeTheyExpire) {
  auto imds = testing::FakeImds::Start();
  ASSERT_TRUE(imds.ok()) << imds.status();
  (*imds)->SetRole("ferry-agent", RoleCredentials("AKIDONE", now_ + absl::Minutes(30)));
  CredentialsProvider provider(ImdsOptions((*imds)->endpoint()));

  absl::StatusOr<Credentials> got = provider.Get();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->access_key_id, "AKIDONE");
  EXPECT_EQ(got->secret_access_key, "role-secret/with+chars");
  EXPECT_EQ(got->session_token, "role-session-token");
  EXPECT_EQ(got->expiration, now_ + absl::Minutes(30));
  now_ += absl::Minutes(19);  // 11 minutes left: still fresh.
  ASSERT_TRUE(provider.Get().ok());
  EXPECT_EQ((*imds)->credential_fetches(), 1);

  (*imds)->SetRole("ferry-agent", RoleCredentials("AKIDTWO", now_ + absl::Hours(6)));
  now_ += absl::Minutes(2);  // 9 minutes left: fetched again.
  got = provider.Get();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->access_key_id, "AKIDTWO");
  EXPECT_EQ((*imds)->credential_fetches(), 2);
  EXPECT_EQ((*imds)->refused_requests(), 0);  // Every request carried the IMDSv2 token.
}

TEST_F(CredentialsTest, CachedCredentialsOutliveAnImdsOutageUntilTheyExpire) {
  auto imds = testing::FakeImds::Start();
  ASSERT_TRUE(imds.ok()) << imds.status();
  const std::string endpoint = (*imds)->endpoint();
  (*imds)->SetRole("ferry-agent", RoleCredentials("AKIDONE", now_ + absl::Minutes(8)));
  CredentialsProvider provider(ImdsOptions(endpoint));
  ASSERT_TRUE(provider.Get().ok());
  imds->reset();  // IMDS is gone.

  now_ += absl::Minutes(5);  // Due for a refresh that fails: 3 minutes left, so used.
  absl::StatusOr<Credentials> got = provider.Get();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->access_key_id, "AKIDONE");

  now_ += absl::Minutes(2) + absl::Seconds(30);  // 30 s left: no longer good enough.
  got = provider.Get();
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(got.status().message(), Not(HasSubstr("role-secret")));
}

TEST_F(CredentialsTest, NoRoleAndNoImdsAreFailedPreconditions) {
  auto imds = testing::FakeImds::Start();
  ASSERT_TRUE(imds.ok()) << imds.status();
  CredentialsProvider no_role(ImdsOptions((*imds)->endpoint()));
  absl::StatusOr<Credentials> got = no_role.Get();
  EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(got.status().message(), HasSubstr("no IAM role"));
  EXPECT_THAT(got.status().message(), HasSubstr("AWS_ACCESS_KEY_ID"));

  const std::string gone = (*imds)->endpoint();
  imds->reset();
  CredentialsProvider unreachable(ImdsOptions(gone));
  EXPECT_EQ(unreachable.Get().status().code(), absl::StatusCode::kFailedPrecondition);

  CredentialsProvider nowhere(ImdsOptions(""));
  EXPECT_EQ(nowhere.Get().status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ParseImdsCredentialsTest, ReadsTheDocumentAndRefusesFailures) {
  absl::StatusOr<Credentials> ok = ParseImdsCredentials(
      R"({"Code" : "Success", "Type" : "AWS-HMAC", "AccessKeyId" : "ASIAEXAMPLE",
          "SecretAccessKey" : "se\/cret", "Token" : "tok",
          "Expiration" : "2026-12-01T20:00:00Z"})");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->secret_access_key, "se/cret");
  EXPECT_EQ(ok->expiration, absl::FromUnixSeconds(1796155200));

  EXPECT_EQ(ParseImdsCredentials(R"({"Code" : "AssumeRoleUnauthorizedAccess"})").status().code(),
            absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<Credentials> no_token = ParseImdsCredentials(
      R"({"Code":"Success","AccessKeyId":"A","SecretAccessKey":"hunter2","Expiration":"x"})");
  EXPECT_THAT(no_token.status().message(), HasSubstr("Token"));
  EXPECT_THAT(no_token.status().message(), Not(HasSubstr("hunter2")));
}

}  // namespace
}  // namespace ferry::aws
