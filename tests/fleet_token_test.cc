// ferry-agent against a real ferry-controller that requires a bearer token: a refused token
// ends the agent with exit code 3 and a message that says so, at once, instead of reconnecting
// forever; a controller that is merely not there yet is waited for.

#include <memory>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/time/clock.h"
#include "common/testing/process.h"
#include "common/testing/redis_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fleet.h"

namespace ferry::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class FleetTokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RequireRedisServerBinary().ok()) << RequireRedisServerBinary();
    ASSERT_FALSE(dir_.empty());
    ASSERT_TRUE(WriteTextFile(token_file_, token_ + "\n").ok());
    ASSERT_TRUE(WriteTextFile(wrong_token_file_, "wrong-token-93ad\n").ok());
    FleetOptions options;
    options.controller_flags = {"--token-file", token_file_};
    options.client_env = {{"FERRY_TOKEN", token_}};
    fleet_ = std::make_unique<Fleet>(options);
  }

  ScopedTempDir scratch_{"ferry-token-"};
  const std::string dir_ = scratch_.path();
  const std::string token_file_ = dir_ + "/token";
  const std::string wrong_token_file_ = dir_ + "/wrong-token";
  const std::string token_ = "right-token-e41f07b2";
  std::unique_ptr<Fleet> fleet_;
};

TEST_F(FleetTokenTest, AnAgentWithAWrongTokenExitsWithCode3) {
  ASSERT_TRUE(fleet_->StartController().ok()) << ReadFile(fleet_->controller_log());
  absl::StatusOr<int> agent = fleet_->StartAgent(2, {"--token-file", wrong_token_file_});
  ASSERT_TRUE(agent.ok()) << agent.status();
  const absl::Time start = absl::Now();
  absl::StatusOr<int> code = fleet_->agent(*agent).Wait(absl::Seconds(30));
  ASSERT_TRUE(code.ok()) << "still running after 30 s: " << ReadFile(fleet_->agent_log(*agent));
  const std::string log = ReadFile(fleet_->agent_log(*agent));
  EXPECT_EQ(*code, 3) << log;
  // At the first refusal, not after a round of retries.
  EXPECT_LT(absl::Now() - start, absl::Seconds(15)) << log;
  EXPECT_THAT(log, HasSubstr("refused this agent")) << log;
  EXPECT_THAT(log, HasSubstr("UNAUTHENTICATED")) << log;
  EXPECT_THAT(log, HasSubstr("--token-file or FERRY_TOKEN")) << log;
  EXPECT_THAT(log, Not(HasSubstr("reconnecting"))) << log;
  EXPECT_THAT(log, Not(HasSubstr("wrong-token-93ad"))) << log;
  EXPECT_TRUE(fleet_->WaitForAgents(0).ok());
}

TEST_F(FleetTokenTest, AnAgentWaitsForAControllerThatIsNotThereYet) {
  // The controller's port refuses connections (UNAVAILABLE): the agent keeps trying.
  absl::StatusOr<int> agent = fleet_->StartAgent(2, {"--token-file", token_file_});
  ASSERT_TRUE(agent.ok()) << agent.status();
  ASSERT_TRUE(WaitFor(
                  [&] {
                    return ReadFile(fleet_->agent_log(*agent)).find("reconnecting") !=
                           std::string::npos;
                  },
                  absl::Seconds(30), absl::Milliseconds(100))
                  .ok())
      << ReadFile(fleet_->agent_log(*agent));
  ASSERT_FALSE(fleet_->agent(*agent).TryWait().has_value()) << ReadFile(fleet_->agent_log(*agent));
  ASSERT_TRUE(fleet_->StartController().ok()) << ReadFile(fleet_->controller_log());
  EXPECT_TRUE(fleet_->WaitForAgents(1).ok()) << fleet_->AllLogs();
  absl::StatusOr<int> code = fleet_->StopAgent(*agent);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << ReadFile(fleet_->agent_log(*agent));
  EXPECT_THAT(fleet_->AllLogs(), Not(HasSubstr(token_)));
}

}  // namespace
}  // namespace ferry::testing
