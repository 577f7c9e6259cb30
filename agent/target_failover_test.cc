// A shard copied into a real Redis Cluster whose primary is killed mid-copy and replaced by its
// replica (CLUSTER FAILOVER TAKEOVER): the copy goes on when the replica held everything the
// reported checkpoints count as written, and fails with DATA_LOSS when it had missed some
// (agent/target_guard.h, agent/checkpoint_gate.h).

#include <signal.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "agent/copier.h"
#include "agent/rate_limiter.h"
#include "common/redis/connection.h"
#include "common/testing/redis_cluster.h"
#include "common/testing/redis_helpers.h"
#include "common/testing/redis_server.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::agent {
namespace {

namespace ft = ::ferry::testing;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr int kKeys = 3000;
// Node 1 is a primary (not the seed, which the router opens first); node 3 its replica.
constexpr int kVictim = 1;
constexpr int kHeir = 3;

int64_t ReplicationOffset(const ft::RedisServer& server) {
  absl::StatusOr<redis::Connection> c = server.Connect();
  if (!c.ok()) return -1;
  absl::StatusOr<redis::Reply> info = c->Command({"INFO", "replication"});
  int64_t offset = -1;
  if (!info.ok() ||
      !absl::SimpleAtoi(redis::InfoField(info->str(), "master_repl_offset"), &offset)) {
    return -1;
  }
  return offset;
}

class TargetFailoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(ft::RequireRedisServerBinary());
    source_ = ft::StartServer();
    ASSERT_NE(source_, nullptr);
    ASSERT_OK_AND_ASSIGN(cluster_, ft::RedisCluster::Start(2, 1));
    redis::Connection s = ft::Connect(*source_);
    for (int i = 0; i < kKeys; i += 100) {
      std::vector<std::vector<std::string>> sets;
      for (int k = i; k < i + 100; ++k) sets.push_back({"SET", absl::StrCat("key:", k), "value"});
      ASSERT_OK(redis::RunPipeline(s, sets).status());
    }
  }

  void TearDown() override {
    if (copy_.joinable()) copy_.join();
    if (cluster_ != nullptr && cluster_->node(kHeir).pid() > 0) {
      ::kill(cluster_->node(kHeir).pid(), SIGCONT);
    }
  }

  // Copies the whole source into the cluster on a thread, slowly enough to fail a node midway.
  void StartCopy() {
    copy_ = std::thread([this] {
      ShardSpec spec;
      spec.source = source_->endpoint();
      spec.target = cluster_->endpoint();
      CopyOptions options;
      options.batch_keys = 20;
      CopyCallbacks callbacks;
      callbacks.on_checkpoint = [this](const Checkpoint& c) {
        absl::MutexLock lock(&mu_);
        reported_copied_ = c.counters.copied();
        ++reports_;
      };
      RateLimiter limiter(300);
      std::atomic<bool> cancel{false};
      absl::Status status = CopyShard(spec, options, Checkpoint(), &limiter, &cancel, callbacks);
      absl::MutexLock lock(&mu_);
      status_ = status;
      finished_ = true;
    });
  }

  // Until `more` checkpoints that count written keys were reported (the controller would
  // hold them) after those reported so far.
  void WaitForReportedWrites(int more = 1) {
    absl::MutexLock lock(&mu_);
    const int64_t enough = reports_ + more;
    auto reported = [this, enough]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return finished_ || (reported_copied_ > 0 && reports_ >= enough);
    };
    ASSERT_TRUE(mu_.AwaitWithTimeout(absl::Condition(&reported), absl::Seconds(60)));
    ASSERT_FALSE(finished_) << "the copy ended before the failover: " << status_;
  }

  absl::Status CopyResult() {
    copy_.join();
    absl::MutexLock lock(&mu_);
    return status_;
  }

  void KillVictimAndTakeOver() {
    cluster_->node(kVictim).Kill();
    redis::Connection heir = ft::Connect(cluster_->node(kHeir));
    ASSERT_OK(heir.Command({"CLUSTER", "FAILOVER", "TAKEOVER"}).status());
  }

  std::string Address(int node) const {
    return absl::StrCat("127.0.0.1:", cluster_->node(node).port());
  }

  std::unique_ptr<ft::RedisServer> source_;
  std::unique_ptr<ft::RedisCluster> cluster_;
  std::thread copy_;
  absl::Mutex mu_;
  int64_t reported_copied_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t reports_ ABSL_GUARDED_BY(mu_) = 0;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

TEST_F(TargetFailoverTest, AReplicaThatMissedReportedWritesFailsTheCopy) {
  StartCopy();
  WaitForReportedWrites();
  // Mid-copy, once every connection of the copy was opened (each look at a node reads its
  // offset), the replica stops receiving: frozen, and its primary drops it. Only offsets read
  // when later checkpoints are reported can show that it misses their writes: the second
  // report after this counts batches written after it.
  ASSERT_EQ(::kill(cluster_->node(kHeir).pid(), SIGSTOP), 0);
  redis::Connection victim = ft::Connect(cluster_->node(kVictim));
  ASSERT_OK(victim.Command({"CLIENT", "KILL", "TYPE", "replica"}).status());
  WaitForReportedWrites(2);
  ASSERT_EQ(::kill(cluster_->node(kHeir).pid(), SIGCONT), 0);
  KillVictimAndTakeOver();
  const absl::Status status = CopyResult();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_THAT(status.message(),
              HasSubstr(absl::StrCat("target ", Address(kHeir),
                                     " was promoted from a replica that had not received")));
  EXPECT_THAT(status.message(), HasSubstr(absl::StrCat("written to ", Address(kVictim))));
}

TEST_F(TargetFailoverTest, AReplicaThatHeldEverythingTakesOverAndTheCopyCompletes) {
  StartCopy();
  WaitForReportedWrites();
  // Writes stop (the source blocks the copy's reads) and the replica catches up; then its
  // primary dies with nothing unreplicated, and the copy resumes on the new primary.
  redis::Connection source = ft::Connect(*source_);
  ASSERT_OK(source.Command({"CLIENT", "PAUSE", "6000", "ALL"}).status());
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  int same = 0;
  while (same < 5) {
    ASSERT_LT(absl::Now(), deadline) << "the replica did not catch up";
    const int64_t offset = ReplicationOffset(cluster_->node(kVictim));
    same = offset > 0 && offset == ReplicationOffset(cluster_->node(kHeir)) ? same + 1 : 0;
    absl::SleepFor(absl::Milliseconds(100));
  }
  KillVictimAndTakeOver();
  ASSERT_OK(source.Command({"CLIENT", "UNPAUSE"}).status());
  ASSERT_OK(CopyResult());
  ASSERT_OK_AND_ASSIGN(std::vector<ft::KeyDiff> diffs,
                       ft::CompareDeployments(source_->endpoint(), 0, cluster_->endpoint(), 0));
  EXPECT_THAT(diffs, IsEmpty());
}

}  // namespace
}  // namespace ferry::agent
