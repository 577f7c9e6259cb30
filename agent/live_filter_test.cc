// The live watcher (live_watcher.h) under the job's filters and a restricted user: --match narrows
// the subscription (and the cutover markers still come back), --type copies only its type and
// deletes a target key whose source changed away from it, and a user without PUBLISH cuts over
// with a marker key.

#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "agent/live_test_watch.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::agent {
namespace {

namespace ft = ::ferry::testing;
using live_test::Integer;
using live_test::Notifying;
using live_test::Send;
using live_test::Watch;
using ::testing::HasSubstr;

class LiveFilterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(ft::RequireRedisServerBinary().ok()) << ft::RequireRedisServerBinary();
    target_ = ft::StartServer();
    ASSERT_NE(target_, nullptr);
  }
  std::unique_ptr<ft::RedisServer> target_;
};

TEST_F(LiveFilterTest, MatchNarrowsTheSubscriptionAndMarkersStillComeBack) {
  std::unique_ptr<ft::RedisServer> source = ft::StartServer(Notifying());
  ASSERT_NE(source, nullptr);
  Watch watch(*source, *target_, 1 << 20);
  watch.spec().match = "user:*";
  watch.Start();
  ASSERT_TRUE(watch.WaitSubscribed(1));
  redis::Connection s = ft::Connect(*source);
  Send(s, {{"SET", "user:1", "a"}, {"SET", "order:1", "b"}, {"SET", "user:2", "c"}});
  watch.Apply(true);
  watch.Cutover(1);
  ASSERT_TRUE(watch.WaitFor([](const auto& l) { return l.cutover_seq() == 1; }));
  EXPECT_EQ(watch.live().events(), 2u);
  EXPECT_EQ(ft::DbSize(*target_), 2);
  redis::Connection t = ft::Connect(*target_);
  EXPECT_EQ(Integer(t, {"EXISTS", "order:1"}), 0);
}

TEST_F(LiveFilterTest, TypeCopiesItsTypeAndDeletesAKeyThatChangedAwayFromIt) {
  std::unique_ptr<ft::RedisServer> source = ft::StartServer(Notifying());
  ASSERT_NE(source, nullptr);
  redis::Connection s = ft::Connect(*source);
  redis::Connection t = ft::Connect(*target_);
  // The snapshot copied the hash "changing"; the target also holds a string of its own.
  Send(s, {{"HSET", "changing", "f", "v"}});
  Send(t, {{"HSET", "changing", "f", "v"}, {"SET", "theirs", "kept"}});
  Watch watch(*source, *target_, 1 << 20);
  watch.spec().type = "hash";
  watch.Start();
  ASSERT_TRUE(watch.WaitSubscribed(1));
  watch.Apply(true);
  Send(s, {{"HSET", "profile", "name", "x"},
           {"SET", "plain", "x"},
           {"SET", "theirs", "source's"},
           {"DEL", "changing"},
           {"SET", "changing", "now a string"}});
  ASSERT_TRUE(watch.WaitFor([](const auto& l) { return l.events() >= 5 && l.dirty_keys() == 0; }));
  EXPECT_EQ(Integer(t, {"HLEN", "profile"}), 1);
  EXPECT_EQ(Integer(t, {"EXISTS", "plain"}), 0);
  EXPECT_EQ(Integer(t, {"EXISTS", "changing"}), 0);
  absl::StatusOr<redis::Reply> theirs = t.Command({"GET", "theirs"});
  ASSERT_TRUE(theirs.ok()) << theirs.status();
  EXPECT_EQ(theirs->str(), "kept");
}

TEST_F(LiveFilterTest, CutoverWritesAMarkerKeyWherePublishIsRefused) {
  ft::RedisServerOptions options = Notifying();
  options.acl_lines.push_back("user nopub on >pw ~* &* +@all -publish");
  std::unique_ptr<ft::RedisServer> source = ft::StartServer(options);
  ASSERT_NE(source, nullptr);
  Watch watch(*source, *target_, 1 << 20);
  watch.spec().source.user = "nopub";
  watch.spec().source.password = "pw";
  watch.Start();
  ASSERT_TRUE(watch.WaitSubscribed(1));
  redis::Connection s = ft::Connect(*source);
  Send(s, {{"SET", "a", "1"}});
  watch.Apply(true);
  watch.Cutover(1);
  ASSERT_TRUE(watch.WaitFor([](const auto& l) { return l.cutover_seq() == 1; }));
  EXPECT_EQ(watch.live().events_after_marker(), 0u);
  // The marker is a short-lived key on the source, not copied.
  absl::StatusOr<redis::Reply> markers = s.Command({"KEYS", "ferry:cutover:*"});
  ASSERT_TRUE(markers.ok()) << markers.status();
  ASSERT_EQ(markers->size(), 1u);
  const int64_t ttl = Integer(s, {"PTTL", std::string(markers->element(0).str())});
  EXPECT_GT(ttl, 0);
  EXPECT_LE(ttl, 60000);
  EXPECT_EQ(ft::DbSize(*target_), 1);
  EXPECT_EQ(watch.live().events(), 1u);
}

}  // namespace
}  // namespace ferry::agent
