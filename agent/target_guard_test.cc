#include "agent/target_guard.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::agent {
namespace {

using ::testing::HasSubstr;

TEST(TargetGuardTest, SameProcessPassesAndNewNodesAreRemembered) {
  std::vector<TargetNode> nodes = {{"10.0.0.1:6379", "aaa", 5}};
  TargetGuard guard(&nodes);
  EXPECT_TRUE(guard.Observe({"10.0.0.1:6379", "aaa", 5}).ok());
  // A node found later (a failover's new primary) is remembered as first seen.
  EXPECT_TRUE(guard.Observe({"10.0.0.2:6379", "bbb", 0}).ok());
  ASSERT_EQ(nodes.size(), 2u);
  EXPECT_EQ(nodes[1].run_id, "bbb");
  EXPECT_TRUE(guard.Observe({"10.0.0.2:6379", "bbb", 0}).ok());
}

TEST(TargetGuardTest, ARestartedNodeIsDataLoss) {
  std::vector<TargetNode> nodes = {{"10.0.0.1:6379", "aaa", 0}};
  TargetGuard guard(&nodes);
  absl::Status s = guard.Observe({"10.0.0.1:6379", "ccc", 0});
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("target 10.0.0.1:6379 restarted during the copy"));
}

TEST(TargetGuardTest, AReplicaIsNotRememberedSoItsRestartIsNoLoss) {
  // A cluster seed that is a replica: nothing was written to it.
  std::vector<TargetNode> nodes = {{"10.0.0.1:6379", "aaa", 0}};
  TargetGuard guard(&nodes);
  EXPECT_TRUE(guard.Observe({"10.0.0.3:6379", "rrr", 0, /*replica=*/true}).ok());
  EXPECT_EQ(nodes.size(), 1u);
  EXPECT_TRUE(guard.Observe({"10.0.0.3:6379", "sss", 0, /*replica=*/true}).ok());
  // A primary written to that comes back as a replica of another process is still a loss.
  EXPECT_EQ(guard.Observe({"10.0.0.1:6379", "bbb", 0, /*replica=*/true}).code(),
            absl::StatusCode::kDataLoss);
}

TEST(TargetGuardTest, EvictionsSinceFirstSeenAreDataLoss) {
  std::vector<TargetNode> nodes = {{"10.0.0.1:6379", "aaa", 7}};
  TargetGuard guard(&nodes);
  EXPECT_TRUE(guard.Observe({"10.0.0.1:6379", "aaa", 7}).ok());
  absl::Status s = guard.Observe({"10.0.0.1:6379", "aaa", 10});
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("evicted 3 keys during the copy"));
}

TEST(TargetGuardTest, UnknownFactsAreNotChecked) {
  // A target user without INFO: nothing to compare, nothing claimed.
  std::vector<TargetNode> nodes = {{"10.0.0.1:6379", "aaa", -1}};
  TargetGuard guard(&nodes);
  EXPECT_TRUE(guard.Observe({"10.0.0.1:6379", "", -1}).ok());
  EXPECT_TRUE(guard.Observe({"10.0.0.1:6379", "aaa", 100}).ok());  // Baseline unknown.
  // A plan made without INFO learns the node at the agent's first look.
  std::vector<TargetNode> blind = {{"10.0.0.1:6379", "", -1}};
  TargetGuard learner(&blind);
  EXPECT_TRUE(learner.Observe({"10.0.0.1:6379", "ddd", 2}).ok());
  EXPECT_EQ(blind[0].run_id, "ddd");
  EXPECT_EQ(learner.Observe({"10.0.0.1:6379", "eee", 2}).code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace ferry::agent
