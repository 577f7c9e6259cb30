// `ferry migrate` end to end: the real binary between real redis-server processes, every result
// compared key by key (type, value, TTL).

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/testing/compare.h"
#include "common/testing/redis_helpers.h"
#include "common/testing/redis_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/ferry_cli.h"

namespace ferry::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class MigrateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RequireRedisServerBinary().ok()) << RequireRedisServerBinary();
    auto source = RedisServer::Start();
    ASSERT_TRUE(source.ok()) << source.status();
    source_ = *std::move(source);
    auto target = RedisServer::Start();
    ASSERT_TRUE(target.ok()) << target.status();
    target_ = *std::move(target);
  }

  redis::Connection Connect(RedisServer& server, int db = 0) {
    auto conn = server.Connect(db);
    EXPECT_TRUE(conn.ok()) << conn.status();
    return *std::move(conn);
  }

  CliResult Migrate(std::vector<std::string> extra = {},
                    std::vector<std::pair<std::string, std::string>> env = {}) {
    std::vector<std::string> args = {"migrate",    "--from", source_->uri(), "--to", target_->uri(),
                                     "--progress", "none",   "--output",     "json"};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunFerry(args, env);
  }

  std::unique_ptr<RedisServer> source_;
  std::unique_ptr<RedisServer> target_;
};

TEST_F(MigrateTest, CopiesEveryTypeInSeveralDatabases) {
  for (int db : {0, 3, 15}) {
    redis::Connection conn = Connect(*source_, db);
    ASSERT_TRUE(LoadMixedData(conn, db, 3000 + db, /*seed=*/db + 1, /*ttl_fraction=*/0.3).ok());
  }
  CliResult r = Migrate();
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.json_int("failed"), 0) << r.output;
  EXPECT_GE(r.json_int("copied"), 3000 + 3003 + 3015) << r.output;
  redis::Connection src = Connect(*source_), dst = Connect(*target_);
  EXPECT_TRUE(SameData(src, dst));
  EXPECT_EQ(DbSize(*target_, 3), 3003);
}

TEST_F(MigrateTest, BinaryAndUnicodeKeysAndEmptyValues) {
  redis::Connection conn = Connect(*source_);
  const std::string binary_key("bin\0key\xff\r\n", 11);
  const std::string binary_value("\0\1\2\xfe\xff\r\n$*", 10);
  ASSERT_TRUE(conn.Command({"SET", binary_key, binary_value}).ok());
  ASSERT_TRUE(conn.Command({"SET", "ключ-🔑-鍵", "значение ✓"}).ok());
  ASSERT_TRUE(conn.Command({"SET", "empty", ""}).ok());
  ASSERT_TRUE(conn.Command({"HSET", "h\xc3\xa9", "", "", "f\0x", "v"}).ok());
  ASSERT_TRUE(conn.Command({"PEXPIRE", "empty", "600000"}).ok());
  CliResult r = Migrate();
  ASSERT_EQ(r.exit_code, 0) << r.output;
  redis::Connection src = Connect(*source_), dst = Connect(*target_);
  EXPECT_TRUE(SameData(src, dst));
  auto value = dst.Command({"GET", binary_key});
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(value->str(), binary_value);
}

TEST_F(MigrateTest, ShardsAndParallelismDoNotChangeTheResult) {
  redis::Connection conn = Connect(*source_);
  ASSERT_TRUE(LoadMixedData(conn, 0, 50000, 7, 0.2).ok());
  CliResult r = Migrate({"--shards", "16", "--parallel", "3", "--batch", "97"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.json_int("shards_total"), 16);
  redis::Connection src = Connect(*source_), dst = Connect(*target_);
  EXPECT_TRUE(SameData(src, dst));
}

TEST_F(MigrateTest, KeysExpiringDuringTheCopyAreNeverResurrectedOrExtended) {
  redis::Connection conn = Connect(*source_);
  ASSERT_TRUE(LoadMixedData(conn, 0, 4000, 11, 0.0).ok());
  // 2000 keys that expire while the rate-limited copy runs (~2 s), and 2000 that outlive it.
  for (int i = 0; i < 2000; ++i) {
    conn.Append({"SET", absl::StrCat("short:", i), "v", "PX", std::to_string(200 + i % 1500)});
    conn.Append({"SET", absl::StrCat("long:", i), "v", "PX", std::to_string(120000 + i)});
  }
  ASSERT_TRUE(conn.Flush().ok());
  for (int i = 0; i < 4000; ++i) ASSERT_TRUE(conn.ReadReply().ok());
  CliResult r = Migrate({"--rate-limit", "4000", "--batch", "100"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_GT(r.json_int("expired") + r.json_int("vanished"), 0) << r.output;
  redis::Connection dst = Connect(*target_);
  // Never extended: the target's absolute expiry time is not later than the source's.
  for (int i = 0; i < 2000; ++i) {
    const std::string key = absl::StrCat("long:", i);
    auto src_at = conn.Command({"PEXPIRETIME", key});
    auto dst_at = dst.Command({"PEXPIRETIME", key});
    ASSERT_TRUE(src_at.ok() && dst_at.ok());
    ASSERT_GT(dst_at->integer(), 0) << key;
    EXPECT_LE(dst_at->integer(), src_at->integer()) << key;
  }
  // Never resurrected: once the short TTLs have run out, none of them is in the target.
  absl::SleepFor(absl::Milliseconds(1800));
  for (int i = 0; i < 2000; ++i) {
    auto exists = dst.Command({"EXISTS", absl::StrCat("short:", i)});
    ASSERT_TRUE(exists.ok());
    EXPECT_EQ(exists->integer(), 0) << "short:" << i;
  }
  EXPECT_TRUE(SameData(conn, dst));
}

TEST_F(MigrateTest, KeysDeletedDuringTheCopyAreCountedNotErrors) {
  redis::Connection conn = Connect(*source_);
  ASSERT_TRUE(LoadMixedData(conn, 0, 20000, 5, 0.1).ok());
  std::atomic<bool> done{false};
  std::thread deleter([&] {
    redis::Connection c = Connect(*source_);
    for (int i = 0; i < 20000 && !done; i += 2) {
      (void)c.Command({"DEL", absl::StrCat("mixed:5:", i, ":string")});
      (void)c.Command({"UNLINK", absl::StrCat("mixed:5:", i, ":hash")});
    }
  });
  CliResult r = Migrate({"--rate-limit", "10000", "--batch", "200"});
  done = true;
  deleter.join();
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.json_int("failed"), 0);
  // Every key still in the source arrived; keys deleted after their copy may linger in the
  // target (there is no live sync here), so only the source side is checked.
  redis::Connection dst = Connect(*target_);
  CompareOptions options;
  options.check_extra_in_target = false;
  EXPECT_TRUE(SameData(conn, 0, dst, 0, options));
}

// --rate-limit-bytes paces the source reads of the whole job: 3 MB of values at 1 MB/s take
// about 3 s, however many shards copy at once.
TEST_F(MigrateTest, ByteRateLimitPacesTheSourceReads) {
  redis::Connection conn = Connect(*source_);
  const std::string value(1000, 'v');
  for (int i = 0; i < 3000; ++i) conn.Append({"SET", absl::StrCat("paced:", i), value});
  for (int i = 0; i < 3000; ++i) ASSERT_TRUE(conn.ReadReply().ok());
  const absl::Time start = absl::Now();
  CliResult r = Migrate({"--rate-limit-bytes", "1", "--shards", "4", "--batch", "100"});
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.json_int("copied"), 3000);
  // The bucket starts with a second's worth: at least 2 s for the 3 MB (and a bit), well below
  // the time a key limit alone would explain.
  EXPECT_GE(seconds, 1.8) << r.output;
  EXPECT_LT(seconds, 20) << r.output;
  CliResult bad = RunFerry(
      {"migrate", "--from", source_->uri(), "--to", target_->uri(), "--rate-limit-bytes", "-1"});
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_THAT(bad.output, HasSubstr("--rate-limit-bytes")) << bad.output;
}

TEST_F(MigrateTest, HundredMegabyteStringAndMillionElementHash) {
  redis::Connection conn = Connect(*source_);
  const std::string chunk(1 << 20, 'x');
  for (int i = 0; i < 100; ++i) conn.Append({"APPEND", "big:string", chunk});
  for (int i = 0; i < 1000; ++i) {
    std::vector<std::string> cmd = {"HSET", "big:hash"};
    for (int j = 0; j < 1000; ++j) {
      cmd.push_back(absl::StrCat("field:", i * 1000 + j));
      cmd.push_back(absl::StrCat(j));
    }
    std::vector<absl::string_view> argv(cmd.begin(), cmd.end());
    conn.Append(argv);
  }
  ASSERT_TRUE(conn.Flush().ok());
  for (int i = 0; i < 1100; ++i) {
    auto reply = conn.ReadReply();
    ASSERT_TRUE(reply.ok() && !reply->is_error());
  }
  ASSERT_TRUE(conn.Command({"SET", "small", "1"}).ok());
  CliResult r = Migrate();
  ASSERT_EQ(r.exit_code, 0) << r.output;
  redis::Connection dst = Connect(*target_);
  auto len = dst.Command({"STRLEN", "big:string"});
  ASSERT_TRUE(len.ok());
  EXPECT_EQ(len->integer(), 100 << 20);
  auto hlen = dst.Command({"HLEN", "big:hash"});
  ASSERT_TRUE(hlen.ok());
  EXPECT_EQ(hlen->integer(), 1000000);
  EXPECT_TRUE(SameData(conn, dst));
}

TEST_F(MigrateTest, MatchAndTypeFilters) {
  redis::Connection conn = Connect(*source_);
  ASSERT_TRUE(LoadMixedData(conn, 0, 5000, 3, 0.1).ok());
  CliResult r = Migrate({"--match", "mixed:3:1*", "--type", "hash"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  redis::Connection dst = Connect(*target_);
  auto keys = dst.Command({"KEYS", "*"});
  ASSERT_TRUE(keys.ok());
  ASSERT_GT(keys->size(), 0u);
  for (size_t i = 0; i < keys->size(); ++i) {
    const std::string key(keys->element(i).str());
    EXPECT_EQ(key.rfind("mixed:3:1", 0), 0u) << key;
    auto type = dst.Command({"TYPE", key});
    ASSERT_TRUE(type.ok());
    EXPECT_EQ(type->str(), "hash") << key;
  }
  // And every matching hash of the source is there, equal.
  size_t expected = 0;
  auto all = conn.Command({"KEYS", "mixed:3:1*"});
  ASSERT_TRUE(all.ok());
  for (size_t i = 0; i < all->size(); ++i) {
    auto type = conn.Command({"TYPE", all->element(i).str()});
    if (type.ok() && type->str() == "hash") ++expected;
  }
  EXPECT_EQ(keys->size(), expected);
}

TEST_F(MigrateTest, DryRunWritesNothing) {
  redis::Connection conn = Connect(*source_);
  ASSERT_TRUE(LoadMixedData(conn, 0, 3000, 9, 0.1).ok());
  CliResult r = Migrate({"--dry-run"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.json_line(), HasSubstr("\"dry_run\":true"));
  EXPECT_GE(r.json_int("scanned"), 3000);
  EXPECT_EQ(r.json_int("copied"), 0);
  EXPECT_EQ(DbSize(*target_, 0), 0);
}

TEST_F(MigrateTest, DbSelectionAndTargetDb) {
  for (int db : {1, 2}) {
    redis::Connection conn = Connect(*source_, db);
    ASSERT_TRUE(LoadMixedData(conn, db, 500, db, 0).ok());
  }
  CliResult r = RunFerry({"migrate", "--from", source_->uri(), "--to", target_->uri() + "/7",
                          "--db", "2", "--progress", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(DbSize(*target_, 1), 0);
  EXPECT_EQ(DbSize(*target_, 2), 0);
  redis::Connection src = Connect(*source_, 2), dst = Connect(*target_, 7);
  EXPECT_TRUE(SameData(src, 2, dst, 7));
}

TEST_F(MigrateTest, OnConflictSkipAndFail) {
  redis::Connection src = Connect(*source_), dst = Connect(*target_);
  ASSERT_TRUE(src.Command({"SET", "a", "source"}).ok());
  ASSERT_TRUE(src.Command({"SET", "b", "source"}).ok());
  ASSERT_TRUE(dst.Command({"SET", "a", "target"}).ok());
  CliResult skip = Migrate({"--on-conflict", "skip"});
  ASSERT_EQ(skip.exit_code, 0) << skip.output;
  EXPECT_EQ(skip.json_int("skipped"), 1);
  EXPECT_EQ(dst.Command({"GET", "a"})->str(), "target");
  EXPECT_EQ(dst.Command({"GET", "b"})->str(), "source");
  CliResult fail = Migrate({"--on-conflict", "fail"});
  EXPECT_EQ(fail.exit_code, 1) << fail.output;
  EXPECT_THAT(fail.output, HasSubstr("exists on the target"));
  EXPECT_EQ(dst.Command({"GET", "a"})->str(), "target");
  CliResult replace = Migrate();
  ASSERT_EQ(replace.exit_code, 0) << replace.output;
  EXPECT_EQ(dst.Command({"GET", "a"})->str(), "source");
}

TEST_F(MigrateTest, RefusesToCopyAServerOntoItself) {
  redis::Connection conn = Connect(*source_);
  ASSERT_TRUE(conn.Command({"SET", "k", "v"}).ok());
  CliResult r =
      RunFerry({"migrate", "--from", source_->uri(), "--to", source_->uri(), "--progress", "none"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("the target is the source itself"));
}

TEST_F(MigrateTest, InterruptStopsCleanlyAndSaysWhatWasDone) {
  redis::Connection conn = Connect(*source_);
  ASSERT_TRUE(LoadMixedData(conn, 0, 20000, 2, 0).ok());
  const ScopedTempDir scratch("ferry-int-");
  const std::string log = scratch.path() + "/out.log";
  // An interrupted migrate keeps its state file for a resume: in the scratch dir, not /tmp.
  auto ferry = StartFerry({"migrate", "--from", source_->uri(), "--to", target_->uri(),
                           "--rate-limit", "2000", "--progress", "log"},
                          log, {{"TMPDIR", scratch.path()}});
  ASSERT_TRUE(ferry.ok()) << ferry.status();
  ASSERT_TRUE(WaitFor([&] { return DbSize(*target_, 0) > 0; }, absl::Seconds(20)).ok());
  ASSERT_TRUE(ferry->Signal(SIGINT).ok());
  auto code = ferry->Wait(absl::Seconds(30));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 130);
  const std::string output = ReadFile(log);
  EXPECT_THAT(output, HasSubstr("interrupted"));
  EXPECT_THAT(output, HasSubstr("keys copied"));
  EXPECT_THAT(output, HasSubstr("--state"));
  EXPECT_LT(DbSize(*target_, 0), 20000);
}

TEST_F(MigrateTest, InterruptedMigrationResumesFromItsStateFile) {
  redis::Connection conn = Connect(*source_);
  ASSERT_TRUE(LoadMixedData(conn, 0, 20000, 4, 0.2).ok());
  const std::string dir = MakeTempDir("ferry-resume-");
  const std::string state = dir + "/state.db";
  const std::vector<std::string> args = {
      "migrate", "--from", source_->uri(), "--to", target_->uri(), "--state", state,
      "--batch", "200",    "--progress",   "none", "--output",     "json"};
  std::vector<std::string> slow = args;
  slow.insert(slow.end(), {"--rate-limit", "4000"});
  auto first = StartFerry(slow, dir + "/first.log");
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(WaitFor([&] { return DbSize(*target_, 0) > 2000; }, absl::Seconds(30)).ok());
  ASSERT_TRUE(first->Signal(SIGINT).ok());
  auto code = first->Wait(absl::Seconds(30));
  ASSERT_TRUE(code.ok());
  ASSERT_EQ(*code, 130) << ReadFile(dir + "/first.log");
  const int64_t copied_before = DbSize(*target_, 0);
  ASSERT_LT(copied_before, 20000);

  // The same command with the same state file goes on from the checkpoints.
  CliResult second = RunFerry(args);
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_THAT(second.output, HasSubstr("resuming job"));
  // Resumed, not restarted: the job's scan count (both runs) stays near one pass; starting over
  // would add the keys of the first run again.
  EXPECT_LT(second.json_int("scanned"), 20000 + copied_before / 2) << second.output;
  redis::Connection dst = Connect(*target_);
  EXPECT_TRUE(SameData(conn, dst));
  (void)RemoveTree(dir);
}

TEST(MigrateUsageTest, BadInputGetsAClearMessageAndExitCode2) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  } cases[] = {
      {{"migrate", "--to", "redis://127.0.0.1:1"}, "--from is required"},
      {{"migrate", "--from", "http://x", "--to", "redis://127.0.0.1:1"}, "--from"},
      {{"migrate", "--from", "redis://u:s3cret@127.0.0.1:99999", "--to", "redis://h"}, "port"},
      {{"migrate", "--from", "redis://a", "--to", "redis://b", "--on-conflict", "maybe"},
       "--on-conflict"},
      {{"migrate", "--from", "redis://a", "--to", "redis://b", "--bogus"}, "unknown option"},
      {{"migrate", "--from", "redis://a", "--to", "redis://b", "--db", "x"}, "--db"},
      {{"frobnicate"}, "unknown command"},
  };
  for (const Case& c : cases) {
    CliResult r = RunFerry(c.args);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_THAT(r.output, HasSubstr(c.message));
    EXPECT_THAT(r.output, Not(HasSubstr("s3cret")));
  }
  CliResult help = RunFerry({"migrate", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.output, HasSubstr("--on-conflict"));
}

TEST(MigrateUsageTest, UnreachableServerIsExitCode3) {
  const int port = FreeTcpPort();
  CliResult r = RunFerry({"migrate", "--from", absl::StrCat("redis://127.0.0.1:", port), "--to",
                          "redis://127.0.0.1:1", "--progress", "none"});
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_THAT(r.output, HasSubstr("cannot connect"));
}

}  // namespace
}  // namespace ferry::testing
