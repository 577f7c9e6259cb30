#include "agent/target_guard.h"

#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/redis/connection.h"
#include "common/testing/redis_helpers.h"
#include "common/testing/redis_server.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::agent {
namespace {

namespace ft = ::ferry::testing;
using ::testing::HasSubstr;

// A primary remembered with its history `id` up to `offset` (what Inspect would have read).
TargetNode Primary(const std::string& address, const std::string& run_id,
                   const std::string& id = "", int64_t offset = -1) {
  TargetNode node{address, run_id, 0};
  node.repl_id = id;
  node.repl_offset = offset;
  return node;
}

// A replica of the history `id2` promoted at `id2_end` (its second_repl_offset - 1).
TargetNode Promoted(const std::string& address, const std::string& run_id, const std::string& id2,
                    int64_t id2_end) {
  TargetNode node = Primary(address, run_id, "hist-" + run_id, id2_end + 10);
  node.repl_id2 = id2;
  node.repl_id2_end = id2_end;
  return node;
}

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

TEST(TargetGuardTest, APromotedReplicaMissingWrittenBytesIsDataLoss) {
  std::vector<TargetNode> nodes = {Primary("10.0.0.1:6379", "aaa", "hist-a", 5000)};
  TargetGuard guard(&nodes);
  absl::Status s = guard.Observe(Promoted("10.0.0.2:6379", "bbb", "hist-a", 4000));
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("target 10.0.0.2:6379 was promoted from a replica that had "
                                     "not received 1000 bytes of what was written to "
                                     "10.0.0.1:6379"));
  EXPECT_EQ(nodes.size(), 1u);  // Not remembered: the shard fails.
}

TEST(TargetGuardTest, APromotedReplicaHoldingEverythingGoesOn) {
  std::vector<TargetNode> nodes = {Primary("10.0.0.1:6379", "aaa", "hist-a", 5000)};
  TargetGuard guard(&nodes);
  EXPECT_OK(guard.Observe(Promoted("10.0.0.2:6379", "bbb", "hist-a", 5000)));
  ASSERT_EQ(nodes.size(), 2u);
  EXPECT_EQ(nodes[1].repl_id, "hist-bbb");
  // Another history, or a replica (nothing is written to one), is not judged by hist-a.
  EXPECT_OK(guard.Observe(Promoted("10.0.0.3:6379", "ccc", "hist-x", 1)));
  TargetNode replica = Promoted("10.0.0.4:6379", "ddd", "hist-a", 1);
  replica.replica = true;
  EXPECT_OK(guard.Observe(replica));
}

TEST(TargetGuardTest, APrimaryBehindInARememberedHistoryIsDataLoss) {
  std::vector<TargetNode> nodes = {Primary("10.0.0.1:6379", "aaa", "hist-a", 5000)};
  TargetGuard guard(&nodes);
  EXPECT_OK(guard.Observe(Primary("10.0.0.9:6379", "aaa", "hist-a", 5000)));  // An alias.
  absl::Status s = guard.Observe(Primary("10.0.0.2:6379", "bbb", "hist-a", 4990));
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("lacks 10 bytes of what was written there"));
}

TEST(TargetGuardTest, OffsetsMoveOnlyWhileMarkedWritten) {
  std::vector<TargetNode> nodes = {Primary("10.0.0.1:6379", "aaa", "hist-a", 100)};
  TargetGuard guard(&nodes);
  // Traffic that is not the shard's (replication PINGs) does not raise the bar.
  EXPECT_OK(guard.Observe(Primary("10.0.0.1:6379", "aaa", "hist-a", 150)));
  EXPECT_EQ(nodes[0].repl_offset, 100);
  guard.MarkWritten("10.0.0.1:6379");
  EXPECT_THAT(guard.Written(), ::testing::ElementsAre("10.0.0.1:6379"));
  // A look from on_connect moves the offset but keeps the mark: more writes may follow.
  EXPECT_OK(guard.Observe(Primary("10.0.0.1:6379", "aaa", "hist-a", 300)));
  EXPECT_EQ(nodes[0].repl_offset, 300);
  EXPECT_TRUE(nodes[0].unconfirmed);
  EXPECT_OK(guard.Confirm({Primary("10.0.0.1:6379", "aaa", "hist-a", 400)}));
  EXPECT_EQ(nodes[0].repl_offset, 400);
  EXPECT_TRUE(guard.Written().empty());
}

TEST(TargetGuardTest, ATakeoverOfANodeWithUnconfirmedWritesInterrupts) {
  std::vector<TargetNode> nodes = {Primary("10.0.0.1:6379", "aaa", "hist-a", 5000)};
  TargetGuard guard(&nodes);
  guard.MarkWritten("10.0.0.1:6379");
  absl::Status s = guard.Observe(Promoted("10.0.0.2:6379", "bbb", "hist-a", 9000));
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted);
  EXPECT_THAT(s.message(), HasSubstr("took over from 10.0.0.1:6379"));
  EXPECT_TRUE(guard.interrupted());
}

TEST(TargetGuardTest, ADemotedNodeGivesItsLastOffsetBeforeItsSuccessorIsJudged) {
  // A manual failover: the old primary continues as a replica of the new one, which it left
  // at 5200; the successor holds all of it.
  std::vector<TargetNode> nodes = {Primary("10.0.0.1:6379", "aaa", "hist-a", 5000)};
  TargetGuard guard(&nodes);
  guard.MarkWritten("10.0.0.1:6379");
  TargetNode demoted = Promoted("10.0.0.1:6379", "aaa", "hist-a", 5200);
  demoted.replica = true;
  EXPECT_OK(guard.Confirm({Promoted("10.0.0.2:6379", "bbb", "hist-a", 5200), demoted}));
  EXPECT_EQ(nodes[0].repl_offset, 5200);
  EXPECT_FALSE(guard.interrupted());
}

TEST(TargetGuardTest, UnknownHistoriesAreNotChecked) {
  // No INFO replication (an ACL, an old server): offsets unknown on either side.
  std::vector<TargetNode> nodes = {Primary("10.0.0.1:6379", "aaa")};
  TargetGuard guard(&nodes);
  EXPECT_OK(guard.Observe(Promoted("10.0.0.2:6379", "bbb", "hist-a", 1)));
  std::vector<TargetNode> known = {Primary("10.0.0.1:6379", "aaa", "hist-a", 5000)};
  TargetGuard judge(&known);
  EXPECT_OK(judge.Observe(Primary("10.0.0.2:6379", "bbb")));
  // A plan made without them learns the history at the first look.
  EXPECT_OK(guard.Observe(Primary("10.0.0.1:6379", "aaa", "hist-c", 70)));
  EXPECT_EQ(nodes[0].repl_id, "hist-c");
  EXPECT_EQ(nodes[0].repl_offset, 70);
}

// Real servers: a primary and its replica, the guard reading them as the copy does.
class TargetGuardFailoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(ft::RequireRedisServerBinary());
    ft::RedisServerOptions options;
    // A restricted user, as on managed services: INFO server and stats but no replication.
    options.acl_lines = {"user noreplinfo on >pw ~* &* +@all -info +info|server +info|stats"};
    options.extra_config = {"repl-diskless-sync-delay 0"};  // The replica syncs at once.
    primary_ = ft::StartServer(options);
    replica_ = ft::StartServer(options);
    ASSERT_NE(primary_, nullptr);
    ASSERT_NE(replica_, nullptr);
    redis::Connection r = ft::Connect(*replica_);
    ASSERT_OK(r.Command({"REPLICAOF", "127.0.0.1", absl::StrCat(primary_->port())}).status());
    Write("before", 100);
    WaitCaughtUp();
  }

  void TearDown() override {
    if (replica_ != nullptr && replica_->pid() > 0) ::kill(replica_->pid(), SIGCONT);
  }

  void Write(const std::string& prefix, int keys) {
    redis::Connection p = ft::Connect(*primary_);
    for (int i = 0; i < keys; ++i) {
      ASSERT_OK(p.Command({"SET", absl::StrCat(prefix, i), std::string(100, 'v')}).status());
    }
  }

  static int64_t Offset(const ft::RedisServer& server) {
    redis::Connection c = ft::Connect(server);
    absl::StatusOr<redis::Reply> info = c.Command({"INFO", "replication"});
    int64_t offset = -1;
    if (info.ok())
      (void)absl::SimpleAtoi(redis::InfoField(info->str(), "master_repl_offset"), &offset);
    return offset;
  }

  void WaitCaughtUp() {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (Offset(*replica_) != Offset(*primary_) || Offset(*primary_) <= 0) {
      ASSERT_LT(absl::Now(), deadline) << "the replica did not catch up";
      absl::SleepFor(absl::Milliseconds(20));
    }
  }

  // What the copy does around its writes: remembered at the first look, offsets read again
  // once the writes were acknowledged.
  void RememberPrimary(TargetGuard& guard) {
    redis::Connection p = ft::Connect(*primary_);
    ASSERT_OK(guard.Check(p));
  }
  void ConfirmWrites(TargetGuard& guard) {
    guard.MarkWritten(Address(*primary_));
    redis::Connection p = ft::Connect(*primary_);
    ASSERT_OK_AND_ASSIGN(TargetNode seen, TargetGuard::Inspect(p));
    ASSERT_OK(guard.Confirm({seen}));
    guard.ClearWritten();
  }

  void Promote() {
    redis::Connection r = ft::Connect(*replica_);
    ASSERT_OK(r.Command({"REPLICAOF", "NO", "ONE"}).status());
  }

  static std::string Address(const ft::RedisServer& server) {
    return absl::StrCat("127.0.0.1:", server.port());
  }

  std::unique_ptr<ft::RedisServer> primary_, replica_;
};

TEST_F(TargetGuardFailoverTest, AReplicaThatHadEverythingTakesOver) {
  std::vector<TargetNode> nodes;
  TargetGuard guard(&nodes);
  RememberPrimary(guard);
  ASSERT_EQ(nodes.size(), 1u);
  EXPECT_FALSE(nodes[0].repl_id.empty());
  // Seen as a replica first (a cluster seed): not remembered.
  redis::Connection seed = ft::Connect(*replica_);
  ASSERT_OK(guard.Check(seed));
  EXPECT_EQ(nodes.size(), 1u);
  Write("copied", 200);
  ConfirmWrites(guard);
  WaitCaughtUp();
  primary_->Kill();
  Promote();
  redis::Connection promoted = ft::Connect(*replica_);
  EXPECT_OK(guard.Check(promoted));
  ASSERT_EQ(nodes.size(), 2u);  // The new primary, remembered from here on.
  EXPECT_EQ(nodes[1].address, Address(*replica_));
}

TEST_F(TargetGuardFailoverTest, AReplicaThatMissedWritesIsDataLoss) {
  std::vector<TargetNode> nodes;
  TargetGuard guard(&nodes);
  RememberPrimary(guard);
  // The replica stops receiving: frozen, and the primary drops it (a SIGSTOPped replica would
  // still find what the primary sent in its socket after SIGCONT).
  ASSERT_EQ(::kill(replica_->pid(), SIGSTOP), 0);
  redis::Connection p = ft::Connect(*primary_);
  ASSERT_OK(p.Command({"CLIENT", "KILL", "TYPE", "replica"}).status());
  Write("lost", 200);
  ConfirmWrites(guard);
  primary_->Kill();
  ASSERT_EQ(::kill(replica_->pid(), SIGCONT), 0);
  Promote();
  redis::Connection promoted = ft::Connect(*replica_);
  absl::Status s = guard.Check(promoted);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("target ", Address(*replica_),
                                                  " was promoted from a replica that had not "
                                                  "received")));
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("written to ", Address(*primary_))));
}

TEST_F(TargetGuardFailoverTest, WithoutInfoReplicationTheFailoverIsNotJudged) {
  redis::Endpoint restricted = primary_->endpoint();
  restricted.user = "noreplinfo";
  restricted.password = "pw";
  std::vector<TargetNode> nodes;
  TargetGuard guard(&nodes);
  ASSERT_OK_AND_ASSIGN(redis::Connection p, redis::Connection::Open(restricted));
  ASSERT_OK(guard.Check(p));
  ASSERT_EQ(nodes.size(), 1u);
  EXPECT_FALSE(nodes[0].run_id.empty());
  EXPECT_TRUE(nodes[0].repl_id.empty());
  EXPECT_EQ(nodes[0].repl_offset, -1);
  // The replica misses writes and is promoted: nothing known to judge it by.
  ASSERT_EQ(::kill(replica_->pid(), SIGSTOP), 0);
  redis::Connection admin = ft::Connect(*primary_);
  ASSERT_OK(admin.Command({"CLIENT", "KILL", "TYPE", "replica"}).status());
  Write("lost", 50);
  primary_->Kill();
  ASSERT_EQ(::kill(replica_->pid(), SIGCONT), 0);
  Promote();
  redis::Endpoint promoted_endpoint = replica_->endpoint();
  promoted_endpoint.user = "noreplinfo";
  promoted_endpoint.password = "pw";
  ASSERT_OK_AND_ASSIGN(redis::Connection promoted, redis::Connection::Open(promoted_endpoint));
  ASSERT_OK_AND_ASSIGN(TargetNode seen, TargetGuard::Inspect(promoted));
  EXPECT_TRUE(seen.repl_id2.empty());
  EXPECT_OK(guard.Observe(seen));
}

}  // namespace
}  // namespace ferry::agent
