// `ferry migrate` on an operator's bad day (issue 7): a target that restarts empty or evicts, a
// source that stalls, warnings in plain text. Every case checks the target key by key: the exit
// code alone could hide a false "done".

#include <signal.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/testing/compare.h"
#include "common/testing/redis_helpers.h"
#include "common/testing/redis_server.h"
#include "common/testing/resp_proxy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/ferry_cli.h"

namespace ferry::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// `keys` strings "k:<i>" of `value_bytes` bytes; with `ttl_ms` > 0 each gets a TTL of about that
// (spread over +-10%).
void LoadStrings(RedisServer& server, int keys, int value_bytes, int64_t ttl_ms = 0) {
  redis::Connection conn = Connect(server);
  const std::string value(value_bytes, 'v');
  std::vector<std::vector<std::string>> cmds;
  for (int i = 0; i < keys; ++i) {
    const std::string key = absl::StrCat("k:", i);
    if (ttl_ms > 0) {
      cmds.push_back(
          {"SET", key, value, "PX", std::to_string(ttl_ms * 9 / 10 + (i % 1000) * ttl_ms / 5000)});
    } else {
      cmds.push_back({"SET", key, value});
    }
    if (cmds.size() == 1000 || i + 1 == keys) {
      auto replies = redis::RunPipeline(conn, cmds);
      ASSERT_TRUE(replies.ok()) << replies.status();
      cmds.clear();
    }
  }
}

// Source keys absent from the target.
int64_t MissingOnTarget(RedisServer& source, RedisServer& target) {
  redis::Connection src = Connect(source), dst = Connect(target);
  CompareOptions options;
  options.check_extra_in_target = false;
  auto diffs = CompareServers(src, dst, options);
  EXPECT_TRUE(diffs.ok()) << diffs.status();
  int64_t missing = 0;
  for (const KeyDiff& d : diffs.ok() ? *diffs : std::vector<KeyDiff>()) {
    if (d.problem == "missing in target") ++missing;
  }
  return missing;
}

class MigrateFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RequireRedisServerBinary().ok()) << RequireRedisServerBinary();
    auto source = RedisServer::Start();
    ASSERT_TRUE(source.ok()) << source.status();
    source_ = *std::move(source);
    auto target = RedisServer::Start(target_options_);
    ASSERT_TRUE(target.ok()) << target.status();
    target_ = *std::move(target);
    dir_ = MakeTempDir("ferry-faults-");
    log_ = dir_ + "/migrate.log";
  }
  void TearDown() override { (void)RemoveTree(dir_); }

  std::vector<std::string> MigrateArgs(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"migrate",      "--from",     source_->uri(), "--to",
                                     target_->uri(), "--progress", "none"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  // Starts `args` (a ferry migrate) with --rate-limit `rate` and its output in dir_, and returns
  // once the target holds more than `keys` keys: a fault that follows lands mid-copy.
  absl::StatusOr<Subprocess> StartSlowCopy(std::vector<std::string> args, int rate, int64_t keys) {
    args.insert(args.end(), {"--rate-limit", std::to_string(rate), "--output", "json"});
    absl::StatusOr<Subprocess> ferry = StartFerry(args, log_);
    if (!ferry.ok()) return ferry.status();
    FERRY_RETURN_IF_ERROR(WaitFor([&] { return DbSize(*target_) > keys; }, absl::Seconds(60)));
    return ferry;
  }

  // SIGSTOP the source for `how_long` (the stall itself is what is tested), then SIGCONT.
  void StallSource(absl::Duration how_long) {
    ASSERT_EQ(kill(source_->pid(), SIGSTOP), 0);
    absl::SleepFor(how_long);
    ASSERT_EQ(kill(source_->pid(), SIGCONT), 0);
  }

  // Waits for a StartSlowCopy to end: its exit code (-1 when it did not) and its output.
  std::pair<int, std::string> Finish(Subprocess& ferry) {
    absl::StatusOr<int> code = ferry.Wait(absl::Minutes(3));
    std::string output = ReadFile(log_);
    if (!code.ok()) return {-1, absl::StrCat(output, "\n", code.status().ToString())};
    return {*code, output};
  }

  RedisServerOptions target_options_;
  std::unique_ptr<RedisServer> source_;
  std::unique_ptr<RedisServer> target_;
  std::string dir_;
  std::string log_;
};

// Case 2: the target is killed mid-copy and comes back empty on the same port. Before, ferry
// reconnected and ended "done, 0 failed", exit 0, with a third of the keys gone.
TEST_F(MigrateFaultsTest, TargetThatRestartedEmptyFailsTheJob) {
  LoadStrings(*source_, 100000, 20);
  auto ferry = StartSlowCopy(MigrateArgs(), 20000, 20000);
  ASSERT_TRUE(ferry.ok()) << ferry.status();
  target_->Kill();
  ASSERT_TRUE(target_->Restart(/*keep_data=*/false).ok());
  const auto [code, output] = Finish(*ferry);
  EXPECT_NE(code, 0) << output;
  EXPECT_THAT(output, HasSubstr("restarted during the copy")) << output;
  EXPECT_THAT(output, Not(HasSubstr("\"state\":\"done\""))) << output;
  // The restart did lose keys: a "done" would have been false.
  EXPECT_GT(MissingOnTarget(*source_, *target_), 0);

  // Copied again from the start, the target is whole.
  CliResult again = RunFerry(MigrateArgs());
  ASSERT_EQ(again.exit_code, 0) << again.output;
  redis::Connection src = Connect(*source_), dst = Connect(*target_);
  EXPECT_TRUE(SameData(src, dst));
}

// Case 3, before any write: a target that evicts and cannot hold the source is refused.
TEST_F(MigrateFaultsTest, EvictingTargetTooSmallForTheSourceIsRefused) {
  redis::Connection dst = Connect(*target_);
  ASSERT_TRUE(dst.Command({"CONFIG", "SET", "maxmemory-policy", "allkeys-lru"}).ok());
  ASSERT_TRUE(dst.Command({"CONFIG", "SET", "maxmemory", "20mb"}).ok());
  LoadStrings(*source_, 40000, 1000);
  CliResult r = RunFerry(MigrateArgs());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("maxmemory-policy is allkeys-lru")) << r.output;
  EXPECT_EQ(DbSize(*target_), 0);
}

// Case 3, during the copy: the target starts evicting (its maxmemory lowered, as another writer
// filling it would do): the job must not end in success.
TEST_F(MigrateFaultsTest, TargetThatEvictsDuringTheCopyFailsTheJob) {
  LoadStrings(*source_, 30000, 1000);
  auto ferry = StartSlowCopy(MigrateArgs(), 10000, 5000);
  ASSERT_TRUE(ferry.ok()) << ferry.status();
  redis::Connection dst = Connect(*target_);
  ASSERT_TRUE(dst.Command({"CONFIG", "SET", "maxmemory-policy", "allkeys-lru"}).ok());
  ASSERT_TRUE(dst.Command({"CONFIG", "SET", "maxmemory", "8mb"}).ok());
  const auto [code, output] = Finish(*ferry);
  EXPECT_NE(code, 0) << output;
  EXPECT_THAT(output, HasSubstr("evicted")) << output;
  EXPECT_THAT(output, Not(HasSubstr("\"state\":\"done\""))) << output;
  EXPECT_GT(MissingOnTarget(*source_, *target_), 0);
}

// A target without room that refuses writes (noeviction): the job fails with the target's OOM,
// and what it says it copied is what the target holds.
TEST_F(MigrateFaultsTest, FullTargetStopsTheJobAndCountsWhatItHolds) {
  redis::Connection dst = Connect(*target_);
  ASSERT_TRUE(dst.Command({"CONFIG", "SET", "maxmemory", "10mb"}).ok());
  LoadStrings(*source_, 30000, 1000);
  CliResult r = RunFerry(MigrateArgs({"--output", "json"}));
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("OOM")) << r.output;
  EXPECT_THAT(r.output, HasSubstr("warning: the source's dataset")) << r.output;
  const int64_t held = DbSize(*target_);
  EXPECT_GT(held, 0);
  EXPECT_EQ(r.json_int("copied"), held) << r.output;
}

// Warnings were printed only with --output json.
TEST_F(MigrateFaultsTest, WarningsAreShownInTextOutput) {
  LoadStrings(*source_, 100, 10);
  redis::Connection dst = Connect(*target_);
  ASSERT_TRUE(dst.Command({"SET", "already-there", "x"}).ok());
  CliResult r = RunFerry(MigrateArgs());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("warning: the target is not empty (1 keys)")) << r.output;
  redis::Connection src = Connect(*source_);
  CompareOptions options;
  options.check_extra_in_target = false;
  EXPECT_TRUE(SameData(src, dst, options));
}

// Every key's expiry on the target is no later than on the source, and at most `slack` earlier.
// Both servers run on this host, so PEXPIRETIME values share a clock.
void ExpectExpiriesKept(RedisServer& source, RedisServer& target, int keys, int64_t slack_ms) {
  redis::Connection src = Connect(source), dst = Connect(target);
  int extended = 0, shortened = 0, missing = 0;
  int64_t worst_short = 0;
  for (int begin = 0; begin < keys; begin += 1000) {
    std::vector<std::vector<std::string>> cmds;
    for (int i = begin; i < std::min(keys, begin + 1000); ++i) {
      cmds.push_back({"PEXPIRETIME", absl::StrCat("k:", i)});
    }
    auto a = redis::RunPipeline(src, cmds);
    auto b = redis::RunPipeline(dst, cmds);
    ASSERT_TRUE(a.ok() && b.ok());
    for (size_t j = 0; j < cmds.size(); ++j) {
      const int64_t s = (*a)[j].integer(), t = (*b)[j].integer();
      if (s < 0) continue;  // Expired on the source meanwhile.
      if (t == -2) {
        ++missing;
      } else if (t < 0 || t > s) {
        ++extended;
      } else if (s - t > slack_ms) {
        ++shortened;
        worst_short = std::max(worst_short, s - t);
      }
    }
  }
  EXPECT_EQ(missing, 0) << "keys missing on the target while the source still has them";
  EXPECT_EQ(extended, 0) << "TTLs extended";
  EXPECT_EQ(shortened, 0) << "TTLs shortened by more than " << slack_ms << " ms (worst "
                          << worst_short << " ms)";
}

// Case 4: a source stopped for 6 s in the middle of the copy. Before, TTLs read during the stall
// arrived 6 s short (and keys with little time left went missing early).
TEST_F(MigrateFaultsTest, StalledSourceNeitherShortensNorExtendsTtls) {
  constexpr int kKeys = 60000;
  LoadStrings(*source_, kKeys, 20, /*ttl_ms=*/120000);
  auto ferry = StartSlowCopy(MigrateArgs(), 10000, 10000);
  ASSERT_TRUE(ferry.ok()) << ferry.status();
  StallSource(absl::Seconds(6));
  const auto [code, output] = Finish(*ferry);
  ASSERT_EQ(code, 0) << output;
  ExpectExpiriesKept(*source_, *target_, kKeys, /*slack_ms=*/1000);
}

// A proxy in front of the source that makes its Redis 7.0 answer as another server would.
// Case 1: a Redis 4.0 source answers `INFO everything` with an empty reply (seen on 4.0.14).
// Before, the planner saw no databases and the job ended "done", exit 0, 0 keys copied.
TEST_F(MigrateFaultsTest, RedisFourSourceIsCopiedWhole) {
  for (int db : {0, 2}) {
    auto conn = source_->Connect(db);
    ASSERT_TRUE(conn.ok());
    ASSERT_TRUE(LoadMixedData(*conn, db, 4000, db + 11, /*ttl_fraction=*/0.3).ok());
  }
  RespProxyOptions options;
  options.pretend_version = "4.0.14";
  options.empty_info_everything = true;
  std::unique_ptr<RespProxy> proxy = ProxyFor(*source_, options);
  ASSERT_NE(proxy, nullptr);
  CliResult r = RunFerry({"migrate", "--from", ProxyUri(*proxy), "--to", target_->uri(),
                          "--progress", "none", "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_GE(r.json_int("copied"), 8000) << r.output;
  redis::Connection src = Connect(*source_), dst = Connect(*target_);
  EXPECT_TRUE(SameData(src, dst));
  // A 4.0 source has no PEXPIRETIME: ferry never sent it, and read TTLs with PTTL.
  EXPECT_EQ(proxy->commands_seen("PEXPIRETIME"), 0u);
  EXPECT_GT(proxy->commands_seen("PTTL"), 0u);
}

// Case 1, whatever INFO says: a source whose INFO lists no database at all, but whose DBSIZE
// is not zero, must not be "copied" as empty.
TEST_F(MigrateFaultsTest, PlanThatWouldCopyNothingFromKeysIsAnError) {
  LoadStrings(*source_, 500, 10);
  RespProxyOptions options;
  options.strip_info_keyspace = true;
  std::unique_ptr<RespProxy> proxy = ProxyFor(*source_, options);
  ASSERT_NE(proxy, nullptr);
  CliResult r = RunFerry(
      {"migrate", "--from", ProxyUri(*proxy), "--to", target_->uri(), "--progress", "none"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("DBSIZE counts 500")) << r.output;
  EXPECT_EQ(DbSize(*target_), 0);
}

// Case 4 where PEXPIRETIME cannot be used (refused, as a renamed command or an older server):
// PTTL answers that took too long are read again, so the stall does not shorten TTLs either.
TEST_F(MigrateFaultsTest, StalledSourceWithoutPexpiretimeReadsSlowTtlsAgain) {
  constexpr int kKeys = 60000;
  LoadStrings(*source_, kKeys, 20, /*ttl_ms=*/120000);
  RespProxyOptions options;
  options.unknown_commands = {"PEXPIRETIME"};
  std::unique_ptr<RespProxy> proxy = ProxyFor(*source_, options);
  ASSERT_NE(proxy, nullptr);
  auto ferry = StartSlowCopy(
      {"migrate", "--from", ProxyUri(*proxy), "--to", target_->uri(), "--progress", "none"}, 10000,
      10000);
  ASSERT_TRUE(ferry.ok()) << ferry.status();
  StallSource(absl::Seconds(6));
  const auto [code, output] = Finish(*ferry);
  ASSERT_EQ(code, 0) << output;
  // Asked once per connection and refused: every TTL came from PTTL.
  EXPECT_GT(proxy->commands_seen("PEXPIRETIME"), 0u);
  EXPECT_GE(proxy->commands_seen("PTTL"), static_cast<uint64_t>(kKeys));
  ExpectExpiriesKept(*source_, *target_, kKeys, /*slack_ms=*/1000);
}

// A server that stops answering while a connection is opened: a clear timeout (transient), not
// an internal "replies still pending" error that failed the job with exit 2.
TEST_F(MigrateFaultsTest, ConnectionToAStalledServerTimesOutClearly) {
  ASSERT_EQ(kill(source_->pid(), SIGSTOP), 0);
  redis::ConnectOptions options;
  options.io_timeout = absl::Milliseconds(300);
  options.client_name = "ferry-test";
  auto conn = redis::Connection::Open(source_->endpoint(), options);
  ASSERT_EQ(kill(source_->pid(), SIGCONT), 0);
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.status().code(), absl::StatusCode::kDeadlineExceeded) << conn.status();
  EXPECT_THAT(conn.status().message(), HasSubstr("timed out"));
}

}  // namespace
}  // namespace ferry::testing
