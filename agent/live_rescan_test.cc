// Rescan passes of live jobs (Checkpoint.pass > 0; copier.cc RescanAttempt, the fix mode of
// shard_verifier.h) against real redis-servers: a forward shard writes exactly the keys that
// differ, a reverse shard deletes exactly the target's extra keys.

#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/copier.h"
#include "common/redis/connection.h"
#include "common/testing/compare.h"
#include "common/testing/redis_helpers.h"
#include "common/testing/redis_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::agent {
namespace {

namespace ft = ::ferry::testing;
using Commands = std::vector<std::vector<std::string>>;
using ::testing::IsEmpty;

void Send(redis::Connection& c, const Commands& commands) {
  absl::StatusOr<std::vector<redis::Reply>> replies = redis::RunPipeline(c, commands);
  ASSERT_TRUE(replies.ok()) << replies.status();
  for (size_t i = 0; i < replies->size(); ++i) {
    ASSERT_FALSE((*replies)[i].is_error()) << commands[i][0] << ": " << (*replies)[i].str();
  }
}

// Calls of the commands that write a key, from INFO commandstats.
int64_t Writes(redis::Connection& c) {
  absl::StatusOr<redis::Reply> info = c.Command({"INFO", "commandstats"});
  EXPECT_TRUE(info.ok()) << info.status();
  int64_t total = 0;
  for (const char* command : {"set", "restore", "rename", "hset", "rpush", "sadd", "zadd"}) {
    const std::string stats = redis::InfoField(info->str(), absl::StrCat("cmdstat_", command));
    for (absl::string_view part : absl::StrSplit(stats, ',')) {
      int64_t calls = 0;
      if (absl::ConsumePrefix(&part, "calls=") && absl::SimpleAtoi(part, &calls)) total += calls;
    }
  }
  return total;
}

// What opening the target writes: the probe of what it reads (target_probe.cc: SET, RESTORE).
constexpr int64_t kProbeWrites = 2;

struct Pass {
  absl::Status status;
  Checkpoint checkpoint;
  std::vector<std::string> failed;
};

Pass RunRescan(const ft::RedisServer& walked, const ft::RedisServer& other, bool reverse) {
  ShardSpec spec;
  spec.source = walked.endpoint();
  spec.target = other.endpoint();
  spec.reverse = reverse;
  CopyOptions options;
  options.live.emplace();
  Checkpoint resume;
  resume.pass = 1;
  Pass pass;
  CopyCallbacks callbacks;
  callbacks.on_checkpoint = [&pass](const Checkpoint& c) { pass.checkpoint = c; };
  callbacks.on_failed_key = [&pass](const std::string& key, const std::string&) {
    pass.failed.push_back(key);
  };
  std::atomic<bool> cancel{false};
  pass.status = CopyShard(spec, options, resume, nullptr, &cancel, callbacks);
  return pass;
}

class LiveRescanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(ft::RequireRedisServerBinary().ok()) << ft::RequireRedisServerBinary();
    source_ = ft::StartServer();
    target_ = ft::StartServer();
    ASSERT_NE(source_, nullptr);
    ASSERT_NE(target_, nullptr);
    redis::Connection source = ft::Connect(*source_);
    redis::Connection target = ft::Connect(*target_);
    Commands both;
    for (int i = 0; i < 200; ++i) both.push_back({"SET", absl::StrCat("equal:", i), "v"});
    both.push_back({"HSET", "equal:hash", "f", "v"});
    both.push_back({"SET", "equal:ttl", "v", "PX", "500000"});
    Send(source, both);
    Send(target, both);
    // Differences the gap left: 3 values, 4 missing, a TTL lost, a type changed, and 2 keys
    // the source deleted.
    Send(source, {{"SET", "value:1", "new"},
                  {"SET", "value:2", "new"},
                  {"HSET", "value:3", "f", "new"},
                  {"SET", "missing:1", "v"},
                  {"SET", "missing:2", "v"},
                  {"LPUSH", "missing:3", "a"},
                  {"SET", "missing:4", "v", "PX", "400000"},
                  {"SET", "ttl:1", "v", "PX", "300000"},
                  {"HSET", "type:1", "f", "v"}});
    Send(target, {{"SET", "value:1", "old"},
                  {"SET", "value:2", "older"},
                  {"HSET", "value:3", "f", "old"},
                  {"SET", "ttl:1", "v"},
                  {"SET", "type:1", "v"},
                  {"SET", "extra:1", "v"},
                  {"HSET", "extra:2", "f", "v"}});
  }
  std::unique_ptr<ft::RedisServer> source_, target_;
};

TEST_F(LiveRescanTest, ForwardWritesExactlyTheKeysThatDiffer) {
  redis::Connection target = ft::Connect(*target_);
  Send(target, {{"CONFIG", "RESETSTAT"}});
  const Pass pass = RunRescan(*source_, *target_, /*reverse=*/false);
  ASSERT_TRUE(pass.status.ok()) << pass.status;
  EXPECT_TRUE(pass.checkpoint.done);
  EXPECT_EQ(pass.checkpoint.pass, 1u);
  EXPECT_THAT(pass.failed, IsEmpty());
  EXPECT_EQ(pass.checkpoint.counters.copied(), 9u);
  EXPECT_EQ(pass.checkpoint.counters.verified(), 202u);
  // Nothing equal was written again.
  EXPECT_EQ(Writes(target), kProbeWrites + 9);
  redis::Connection s = ft::Connect(*source_);
  redis::Connection t = ft::Connect(*target_);
  ft::CompareOptions forward_only;
  forward_only.check_extra_in_target = false;
  absl::StatusOr<std::vector<ft::KeyDiff>> diffs = ft::CompareDatabases(s, 0, t, 0, forward_only);
  ASSERT_TRUE(diffs.ok()) << diffs.status();
  EXPECT_THAT(*diffs, IsEmpty());
  // A second pass over a converged target writes nothing.
  Send(target, {{"CONFIG", "RESETSTAT"}});
  const Pass again = RunRescan(*source_, *target_, /*reverse=*/false);
  ASSERT_TRUE(again.status.ok()) << again.status;
  EXPECT_EQ(again.checkpoint.counters.copied(), 0u);
  EXPECT_EQ(Writes(target), kProbeWrites);
}

TEST_F(LiveRescanTest, ReverseDeletesExactlyTheTargetsExtraKeys) {
  redis::Connection target = ft::Connect(*target_);
  const int64_t before = ft::DbSize(*target_);
  // The reverse shard walks the job's target and looks on the job's source (lease_spec.cc).
  const Pass pass = RunRescan(*target_, *source_, /*reverse=*/true);
  ASSERT_TRUE(pass.status.ok()) << pass.status;
  EXPECT_TRUE(pass.checkpoint.done);
  EXPECT_EQ(pass.checkpoint.counters.vanished(), 2u);
  EXPECT_EQ(ft::DbSize(*target_), before - 2);
  absl::StatusOr<redis::Reply> extra = target.Command({"EXISTS", "extra:1", "extra:2"});
  ASSERT_TRUE(extra.ok());
  EXPECT_EQ(extra->integer(), 0);
  // Keys the source has, equal or not, are the forward shards' business.
  absl::StatusOr<redis::Reply> kept = target.Command({"GET", "value:1"});
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->str(), "old");
  // Nothing was written to the source.
  EXPECT_EQ(ft::DbSize(*source_), 211);
}

TEST_F(LiveRescanTest, LiveReverseShardsRunOnlyInRescanPasses) {
  ShardSpec spec;
  spec.source = target_->endpoint();
  spec.target = source_->endpoint();
  spec.reverse = true;
  CopyOptions options;
  options.live.emplace();
  std::atomic<bool> cancel{false};
  const absl::Status status = CopyShard(spec, options, Checkpoint(), nullptr, &cancel, {});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_EQ(ft::DbSize(*source_), 211);
}

}  // namespace
}  // namespace ferry::agent
