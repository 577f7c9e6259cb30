// Live sync (live_watcher.h, key_sync.h, the fix mode of shard_verifier.h) against real
// redis-servers: the subscription is live before it is reported, dirty keys are deduplicated and
// bounded, applying copies every kind of change, each kind of gap is found and followed by a new
// subscription, cutover markers come back (and count a writer that goes on), and rescan passes
// fix exactly what differs.

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "agent/copier.h"
#include "agent/live_test_watch.h"
#include "common/redis/connection.h"
#include "common/redis/router.h"
#include "common/redis/slot.h"
#include "common/testing/compare.h"
#include "common/testing/redis_cluster.h"
#include "common/testing/redis_helpers.h"
#include "common/testing/redis_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::agent {
namespace {

namespace ft = ::ferry::testing;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

using live_test::Diff;
using live_test::Integer;
using live_test::Notifying;
using live_test::Send;
using live_test::Watch;

class LiveWatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(ft::RequireRedisServerBinary().ok()) << ft::RequireRedisServerBinary();
    source_ = ft::StartServer(Notifying());
    target_ = ft::StartServer();
    ASSERT_NE(source_, nullptr);
    ASSERT_NE(target_, nullptr);
  }
  std::unique_ptr<ft::RedisServer> source_, target_;
};

TEST_F(LiveWatcherTest, ReportsSubscribedOnlyOnceTheSubscriptionIsLive) {
  std::atomic<int64_t> patterns_at_report{-1};
  const int port = source_->port();
  Watch watch(*source_, *target_, 1 << 20, [&, port](const Checkpoint& c) {
    if (!c.live.subscribed() || patterns_at_report >= 0) return;
    redis::Endpoint endpoint;
    endpoint.host = "127.0.0.1";
    endpoint.port = port;
    absl::StatusOr<redis::Connection> conn = redis::Connection::Open(endpoint);
    if (conn.ok()) patterns_at_report = Integer(*conn, {"PUBSUB", "NUMPAT"});
  });
  watch.Start();
  ASSERT_TRUE(watch.WaitSubscribed(1));
  EXPECT_EQ(patterns_at_report, 1);
  // A write right after the report is seen.
  redis::Connection source = ft::Connect(*source_);
  Send(source, {{"SET", "first", "1"}});
  EXPECT_TRUE(watch.WaitFor([](const auto& s) { return s.events() == 1 && s.dirty_keys() == 1; }));
  EXPECT_EQ(watch.live().subscriptions(), 1u);
  EXPECT_FALSE(watch.live().applying());
  EXPECT_EQ(ft::DbSize(*target_), 0);  // Apply is off: only collected.
}

TEST_F(LiveWatcherTest, FailsWhenNotificationsLackKeyspaceEvents) {
  std::unique_ptr<ft::RedisServer> quiet = ft::StartServer(Notifying("Eg"));
  ASSERT_NE(quiet, nullptr);
  Watch watch(*quiet, *target_, 1 << 20);
  watch.Start();
  const absl::Status status = watch.EndStatus();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(), HasSubstr("CONFIG SET notify-keyspace-events KA"));
  EXPECT_THAT(status.message(), HasSubstr("parameter group"));
}

TEST_F(LiveWatcherTest, FailsWhenTheUserMayNotSubscribe) {
  ft::RedisServerOptions options = Notifying();
  options.acl_lines.push_back("user nosub on >pw ~* resetchannels +@all");
  std::unique_ptr<ft::RedisServer> source = ft::StartServer(options);
  ASSERT_NE(source, nullptr);
  Watch watch(*source, *target_, 1 << 20);
  watch.spec().source.user = "nosub";
  watch.spec().source.password = "pw";
  watch.Start();
  const absl::Status status = watch.EndStatus();
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_THAT(status.message(), HasSubstr("&*"));
  EXPECT_THAT(status.message(), Not(HasSubstr("pw")));
}

TEST_F(LiveWatcherTest, DeduplicatesDirtyKeysAndTakesAGapWhenTheSetOverflows) {
  // Room for three keys of 6 bytes.
  Watch watch(*source_, *target_, 3 * (6 + 64));
  watch.Start();
  ASSERT_TRUE(watch.WaitSubscribed(1));
  redis::Connection source = ft::Connect(*source_);
  Send(source, {{"SET", "key-01", "a"},
                {"SET", "key-01", "b"},
                {"APPEND", "key-01", "c"},
                {"SET", "key-02", "a"}});
  ASSERT_TRUE(watch.WaitFor([](const auto& s) { return s.events() == 4; }));
  EXPECT_EQ(watch.live().dirty_keys(), 2u);
  EXPECT_EQ(watch.live().dirty_bytes(), 2u * (6 + 64));
  EXPECT_EQ(watch.live().gaps(), 0u);
  Send(source, {{"SET", "key-03", "a"}, {"SET", "key-04", "a"}});
  ASSERT_TRUE(watch.WaitFor([](const auto& s) { return s.gaps() == 1; }));
  EXPECT_THAT(watch.live().last_gap(), HasSubstr("dirty set is full"));
  // Subscribed again, with nothing dirty: the rescan covers what was.
  ASSERT_TRUE(watch.WaitSubscribed(2));
  EXPECT_EQ(watch.live().dirty_keys(), 0u);
}

TEST_F(LiveWatcherTest, ApplyingCopiesEveryKindOfChange) {
  redis::Connection source = ft::Connect(*source_);
  redis::Connection target = ft::Connect(*target_);
  // What a snapshot copied before the watch applies.
  const std::vector<std::vector<std::string>> snapshot = {{"SET", "doomed", "x"},
                                                          {"SET", "renamed", "x"},
                                                          {"SET", "expiring", "x"},
                                                          {"SET", "lasting", "x", "PX", "500000"},
                                                          {"SET", "counter", "1"}};
  Send(source, snapshot);
  Send(target, snapshot);
  Watch watch(*source_, *target_, 1 << 20);
  watch.Start();
  ASSERT_TRUE(watch.WaitSubscribed(1));
  watch.Apply(true);
  Send(source, {{"SET", "plain", "v"},
                {"SET", "ttl", "v", "PX", "300000"},
                {"HSET", "hash", "f1", "v1", "f2", "v2"},
                {"LPUSH", "list", "a", "b", "c"},
                {"ZADD", "zset", "1", "m1", "2", "m2"},
                {"SADD", "set", "m1", "m2"},
                {"XADD", "stream", "1-1", "f", "v"},
                {"DEL", "doomed"},
                {"RENAME", "renamed", "moved"},
                {"PEXPIRE", "expiring", "200000"},
                {"PERSIST", "lasting"},
                {"INCR", "counter"}});
  ASSERT_TRUE(watch.WaitFor([](const auto& s) { return s.events() >= 13 && s.dirty_keys() == 0; }));
  EXPECT_THAT(Diff(*source_, *target_), IsEmpty());
  EXPECT_EQ(Integer(target, {"EXISTS", "doomed"}), 0);
  EXPECT_EQ(Integer(target, {"EXISTS", "renamed"}), 0);
  EXPECT_EQ(Integer(target, {"PTTL", "lasting"}), -1);
  EXPECT_GE(watch.live().deleted(), 2u);
  EXPECT_TRUE(watch.live().applying());
  // A key that expires on the source goes from the target too.
  Send(source, {{"SET", "short", "v", "PX", "100"}});
  ASSERT_TRUE(watch.WaitFor([&](const auto&) {
    return Integer(target, {"EXISTS", "short"}) == 0 && Integer(source, {"EXISTS", "short"}) == 0;
  }));
  EXPECT_THAT(Diff(*source_, *target_), IsEmpty());
}

TEST_F(LiveWatcherTest, AKilledSubscriberIsAGapAndApplyWaitsForTheRescan) {
  Watch watch(*source_, *target_, 1 << 20);
  watch.Start();
  ASSERT_TRUE(watch.WaitSubscribed(1));
  watch.Apply(true);
  redis::Connection source = ft::Connect(*source_);
  Send(source, {{"CLIENT", "KILL", "TYPE", "pubsub"}});
  ASSERT_TRUE(watch.WaitSubscribed(2));
  EXPECT_EQ(watch.live().gaps(), 1u);
  EXPECT_THAT(watch.live().last_gap(), HasSubstr("subscription"));
  // Apply is still on from before the gap: nothing is applied until the controller turned it
  // off (its rescan pass) and on again.
  Send(source, {{"SET", "after-gap", "v"}});
  ASSERT_TRUE(watch.WaitFor([](const auto& s) { return s.dirty_keys() == 1; }));
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_FALSE(watch.live().applying());
  EXPECT_EQ(ft::DbSize(*target_), 0);
  watch.Apply(false);
  // A pass lasts far longer than the watcher takes to see apply off (it polls every 50 ms).
  absl::SleepFor(absl::Milliseconds(300));
  watch.Apply(true);
  ASSERT_TRUE(watch.WaitFor([](const auto& s) { return s.applying() && s.dirty_keys() == 0; }));
  EXPECT_THAT(Diff(*source_, *target_), IsEmpty());
}

TEST_F(LiveWatcherTest, FlushdbIsAGap) {
  redis::Connection source = ft::Connect(*source_);
  Send(source, {{"SET", "a", "1"}, {"SET", "b", "2"}});
  Watch watch(*source_, *target_, 1 << 20);
  watch.Start();
  ASSERT_TRUE(watch.WaitSubscribed(1));
  Send(source, {{"FLUSHDB"}});
  ASSERT_TRUE(watch.WaitFor([](const auto& s) { return s.gaps() == 1; }));
  EXPECT_THAT(watch.live().last_gap(), HasSubstr("FLUSHDB"));
  ASSERT_TRUE(watch.WaitSubscribed(2));
  // CONFIG RESETSTAT takes the counters down: a flush could hide behind it.
  Send(source, {{"CONFIG", "RESETSTAT"}});
  ASSERT_TRUE(watch.WaitFor([](const auto& s) { return s.gaps() == 2; }));
  EXPECT_THAT(watch.live().last_gap(), HasSubstr("RESETSTAT"));
}

TEST_F(LiveWatcherTest, CutoverDrainsAndCountsNothingAfterTheMarkerWhenWritersStopped) {
  Watch watch(*source_, *target_, 1 << 20);
  watch.Start();
  ASSERT_TRUE(watch.WaitSubscribed(1));
  redis::Connection source = ft::Connect(*source_);
  std::vector<std::vector<std::string>> writes;
  for (int i = 0; i < 500; ++i) writes.push_back({"SET", absl::StrCat("k", i), "v"});
  Send(source, writes);
  ASSERT_TRUE(watch.WaitFor([](const auto& s) { return s.dirty_keys() == 500; }));
  watch.Cutover(1);
  // Not while apply is off: nothing can be drained.
  absl::SleepFor(absl::Milliseconds(400));
  EXPECT_EQ(watch.live().cutover_seq(), 0u);
  watch.Apply(true);
  ASSERT_TRUE(watch.WaitFor([](const auto& s) { return s.cutover_seq() == 1; }));
  EXPECT_EQ(watch.live().events_after_marker(), 0u);
  EXPECT_EQ(watch.live().dirty_keys(), 0u);
  EXPECT_THAT(Diff(*source_, *target_), IsEmpty());
  // Markers are not keys to copy.
  EXPECT_EQ(watch.live().events(), 500u);
}

TEST_F(LiveWatcherTest, CutoverCountsEventsOfAWriterStillRunning) {
  Watch watch(*source_, *target_, 16 << 20);
  watch.Start();
  ASSERT_TRUE(watch.WaitSubscribed(1));
  watch.Apply(true);
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    redis::Connection c = ft::Connect(*source_);
    for (int i = 0; !stop; ++i) {
      if (!c.Command({"SET", absl::StrCat("w", i % 1000), "v"}).ok()) return;
    }
  });
  absl::SleepFor(absl::Milliseconds(200));
  watch.Cutover(1);
  const bool done = watch.WaitFor([](const auto& s) { return s.cutover_seq() == 1; });
  stop = true;
  writer.join();
  ASSERT_TRUE(done);
  EXPECT_GT(watch.live().events_after_marker(), 0u);
  // Writers stopped: a second cutover converges.
  watch.Cutover(2);
  ASSERT_TRUE(watch.WaitFor([](const auto& s) { return s.cutover_seq() == 2; }));
  EXPECT_EQ(watch.live().events_after_marker(), 0u);
  EXPECT_THAT(Diff(*source_, *target_), IsEmpty());
}

// One watch follows the primary serving its slots, and after a failover the new primary.
TEST(LiveWatcherClusterTest, FollowsTheSlotsPrimaryThroughAFailover) {
  ASSERT_TRUE(ft::RequireRedisServerBinary().ok()) << ft::RequireRedisServerBinary();
  absl::StatusOr<std::unique_ptr<ft::RedisCluster>> cluster =
      ft::RedisCluster::Start(2, 1, Notifying());
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  std::unique_ptr<ft::RedisServer> target = ft::StartServer();
  ASSERT_NE(target, nullptr);
  Watch watch((*cluster)->seed(), *target, 1 << 20);
  watch.spec().slots.AddRange(0, 8191);  // Node 0's, as the planner cuts them.
  watch.spec().source_node = absl::StrCat("127.0.0.1:", (*cluster)->node(0).port());
  watch.Start();
  ASSERT_TRUE(watch.WaitSubscribed(1));
  watch.Apply(true);
  absl::StatusOr<std::unique_ptr<redis::Router>> router =
      redis::Router::Open((*cluster)->endpoint(), 0, {});
  ASSERT_TRUE(router.ok()) << router.status();
  // Ten keys of the watched slots and ten of the others.
  std::vector<std::string> ours, theirs;
  for (int i = 0; ours.size() < 10 || theirs.size() < 10; ++i) {
    std::string key = absl::StrCat("key:", i);
    auto& list = redis::KeySlot(key) <= 8191 ? ours : theirs;
    if (list.size() < 10) list.push_back(key);
  }
  const auto write_all = [&](absl::string_view value) {
    for (const auto* keys : {&ours, &theirs}) {
      for (const std::string& key : *keys) (*router)->Add({"SET", key, value});
    }
    absl::StatusOr<std::vector<redis::Reply>> replies = (*router)->Execute();
    ASSERT_TRUE(replies.ok()) << replies.status();
  };
  write_all("one");
  ASSERT_TRUE(
      watch.WaitFor([](const auto& s) { return s.applied() == 10 && s.dirty_keys() == 0; }));
  EXPECT_EQ(ft::DbSize(*target), 10);
  absl::StatusOr<int> promoted = (*cluster)->Failover(0);
  ASSERT_TRUE(promoted.ok()) << promoted.status();
  ASSERT_TRUE(watch.WaitSubscribed(2));
  EXPECT_EQ(watch.live().gaps(), 1u);
  EXPECT_THAT(watch.live().last_gap(), HasSubstr("no longer a primary"));
  // After the controller's rescan (apply off, then on), the new primary's events are applied.
  watch.Apply(false);
  // A pass lasts far longer than the watcher takes to see apply off (it polls every 50 ms).
  absl::SleepFor(absl::Milliseconds(300));
  watch.Apply(true);
  write_all("two");
  ASSERT_TRUE(watch.WaitFor([](const auto& s) { return s.applied() == 20 && s.dirty_keys() == 0; }))
      << watch.live().DebugString();
  redis::Connection t = ft::Connect(*target);
  for (const std::string& key : ours) {
    absl::StatusOr<redis::Reply> value = t.Command({"GET", key});
    ASSERT_TRUE(value.ok());
    EXPECT_EQ(value->str(), "two") << key;
  }
  EXPECT_EQ(ft::DbSize(*target), 10);
}

}  // namespace
}  // namespace ferry::agent
