// Counters that mean what they say (issue 12): `copied` is distinct source keys, never more than a
// static source holds, even when SCAN returns keys twice; the writes done twice are `resent`.

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/testing/compare.h"
#include "common/testing/redis_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/ferry_cli.h"

namespace ferry::testing {
namespace {

constexpr int kKeys = 50000;

class CountersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RequireRedisServerBinary().ok()) << RequireRedisServerBinary();
    RedisServerOptions options;
    options.extra_config = {"enable-debug-command yes"};
    auto source = RedisServer::Start(options);
    auto target = RedisServer::Start();
    ASSERT_TRUE(source.ok() && target.ok());
    source_ = *std::move(source);
    target_ = *std::move(target);
    auto conn = source_->Connect();
    ASSERT_TRUE(conn.ok());
    ASSERT_TRUE(conn->Command({"DEBUG", "POPULATE", absl::StrCat(kKeys), "k", "20"}).ok());
  }

  CliResult Migrate(std::vector<std::string> extra) {
    std::vector<std::string> args = {"migrate",      "--from",     source_->uri(), "--to",
                                     target_->uri(), "--progress", "none",         "--output",
                                     "json",         "--match",    "k:*"};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunFerry(args);
  }

  std::unique_ptr<RedisServer> source_, target_;
};

TEST_F(CountersTest, ManyShardsCopyEachKeyOnceAndCountItOnce) {
  // 64 shards of ~800 keys: every shard end is a place where a SCAN could run into the next.
  CliResult r = Migrate({"--shards", "64"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.json_int("copied"), kKeys) << r.json_line();
  EXPECT_EQ(r.json_int("scanned"), r.json_int("copied") + r.json_int("resent")) << r.json_line();
  // No shard read its neighbour's keys.
  EXPECT_EQ(r.json_int("resent"), 0) << r.json_line();
  auto src = source_->Connect();
  auto dst = target_->Connect();
  ASSERT_TRUE(src.ok() && dst.ok());
  EXPECT_TRUE(SameData(*src, *dst));
}

TEST_F(CountersTest, KeysSeenTwiceWhileTheTableShrinksAreCountedOnce) {
  // Filler keys the job does not copy (--match k:*), deleted while it runs: the keyspace's table
  // shrinks and is rehashed under the walk, and SCAN returns some keys twice. The copied keys
  // never change.
  auto conn = source_->Connect();
  ASSERT_TRUE(conn.ok());
  ASSERT_TRUE(conn->Command({"DEBUG", "POPULATE", "600000", "filler", "8"}).ok());
  std::thread remover([&] {
    absl::SleepFor(absl::Milliseconds(300));
    auto deleter = source_->Connect();
    if (!deleter.ok()) return;
    for (int i = 0; i < 600000;) {
      for (int j = 0; j < 1000; ++j, ++i) deleter->Append({"UNLINK", absl::StrCat("filler:", i)});
      if (!deleter->Flush().ok()) return;
      for (int j = 0; j < 1000; ++j) (void)deleter->ReadReply();
    }
  });
  CliResult r = Migrate({"--shards", "8", "--rate-limit", "20000"});
  remover.join();
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.json_int("copied"), kKeys) << r.json_line();
  EXPECT_EQ(r.json_int("scanned"), r.json_int("copied") + r.json_int("resent")) << r.json_line();
  auto src = source_->Connect();
  auto dst = target_->Connect();
  ASSERT_TRUE(src.ok() && dst.ok());
  EXPECT_TRUE(SameData(*src, *dst));
}

}  // namespace
}  // namespace ferry::testing
