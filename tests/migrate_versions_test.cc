// `ferry migrate` between servers of other versions and engines (issue 9). Only Redis 7.0 runs
// here: a RESP proxy in front of a real server makes it answer as another one would (INFO,
// DUMP payload versions, RESTORE's payload check, commands and options it lacks), and ACLs or
// rename-command forbid RESTORE. Every case checks the target key by key against the source.

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/redis/capabilities.h"
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

constexpr int kMixedKeys = 3000;

// Values a type-by-type copy must get exactly right, beyond LoadMixedData's: infinite and
// 17-digit scores, a stream with two groups, consumers and pending entries delivered more than
// once, deleted entries and a last id moved past the top entry, an empty stream with a group,
// binary and empty strings.
void LoadEdgeCases(redis::Connection& conn) {
  const std::vector<std::vector<std::string>> cmds = {
      {"ZADD", "edge:zset", "-inf", "low", "inf", "high", "0.10000000000000001", "tenth",
       "-2.5e-300", "tiny"},
      {"SET", "edge:empty", ""},
      {"SET", "edge:binary", std::string("\x00\xff\r\n\x01", 5)},
      {"XADD", "edge:stream", "1-1", "a", "1"},
      {"XADD", "edge:stream", "2-1", "b", "2"},
      {"XADD", "edge:stream", "3-1", "c", "3"},
      {"XADD", "edge:stream", "4-1", "d", "4"},
      {"XGROUP", "CREATE", "edge:stream", "g1", "0"},
      {"XGROUP", "CREATE", "edge:stream", "g2", "2-1"},
      {"XREADGROUP", "GROUP", "g1", "alice", "COUNT", "2", "STREAMS", "edge:stream", ">"},
      {"XREADGROUP", "GROUP", "g1", "bob", "COUNT", "1", "STREAMS", "edge:stream", ">"},
      {"XCLAIM", "edge:stream", "g1", "bob", "0", "1-1"},
      {"XREADGROUP", "GROUP", "g2", "carol", "STREAMS", "edge:stream", ">"},
      {"XDEL", "edge:stream", "4-1"},
      {"XSETID", "edge:stream", "9-9"},
      {"XADD", "edge:gone", "5-5", "x", "y"},
      {"XDEL", "edge:gone", "5-5"},
      {"XGROUP", "CREATE", "edge:gone", "idle", "$"},
      {"PEXPIRE", "edge:zset", "600000"},
  };
  auto replies = redis::RunPipeline(conn, cmds);
  ASSERT_TRUE(replies.ok()) << replies.status();
  for (size_t i = 0; i < replies->size(); ++i) {
    ASSERT_FALSE((*replies)[i].is_error()) << cmds[i][0] << ": " << (*replies)[i].str();
  }
}

class MigrateVersionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RequireRedisServerBinary().ok()) << RequireRedisServerBinary();
    source_ = StartServer();
    ASSERT_NE(source_, nullptr);
  }

  void StartTarget(RedisServerOptions options = {}) {
    target_ = StartServer(std::move(options));
    ASSERT_NE(target_, nullptr);
  }

  void LoadSource() {
    redis::Connection src = Connect(*source_);
    ASSERT_TRUE(LoadMixedData(src, 0, kMixedKeys, 7, /*ttl_fraction=*/0.25).ok());
    LoadEdgeCases(src);
  }

  CliResult Migrate(const std::string& from, const std::string& to,
                    std::vector<std::string> extra = {},
                    const std::vector<std::pair<std::string, std::string>>& env = {}) {
    std::vector<std::string> args = {"migrate",    "--from", from,       "--to", to,
                                     "--progress", "none",   "--output", "json"};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunFerry(args, env);
  }

  // `stream_counters`: false when the target only pretends to be older than 7.0 (its real 7.0
  // keeps entries-added and entries-read that a copy into a real 6.2 could not set).
  ::testing::AssertionResult TargetEqualsSource(bool stream_counters = true) {
    redis::Connection src = Connect(*source_), dst = Connect(*target_);
    CompareOptions options;
    options.stream_counters = stream_counters;
    return SameData(src, dst, options);
  }

  std::unique_ptr<RedisServer> source_;
  std::unique_ptr<RedisServer> target_;
};

// Redis 7.4 writes payload version 12, which Redis 7.0 refuses: before, every non-string key
// failed with "the source runs a newer Redis than the target". Now the first DUMP shows the
// version, and the shard copies type by type from there: no RESTORE is refused.
TEST_F(MigrateVersionsTest, NewerSourceIsCopiedTypeByType) {
  StartTarget();
  LoadSource();
  auto source = ProxyFor(*source_, PretendServer(redis::Engine::kRedis, {7, 4}));
  ASSERT_NE(source, nullptr);
  auto target = ProxyFor(*target_, RespProxyOptions());
  ASSERT_NE(target, nullptr);
  CliResult r = Migrate(ProxyUri(*source), ProxyUri(*target));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.json_int("failed"), 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("copied type by type")) << r.output;
  EXPECT_TRUE(TargetEqualsSource());
  // RESTOREs on the target: the agents' probes of their own value only (one per shard attempt),
  // never a key's payload.
  EXPECT_LE(target->commands_seen("RESTORE"), 64u);
  EXPECT_GT(target->commands_seen("RENAME"), 0u);
}

// Valkey 9 writes payload version 80: no Redis reads it.
TEST_F(MigrateVersionsTest, ValkeyNineSourceIntoRedis) {
  StartTarget();
  LoadSource();
  auto source = ProxyFor(*source_, PretendServer(redis::Engine::kValkey, {9, 0}));
  ASSERT_NE(source, nullptr);
  CliResult r = Migrate(ProxyUri(*source), target_->uri());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("Valkey 9.0")) << r.output;
  EXPECT_TRUE(TargetEqualsSource());
}

// A target that reads only older payloads (Redis 6.2 reads up to version 9): the agent learns it
// from a DUMP of its own probe value there, before the first write.
TEST_F(MigrateVersionsTest, OlderTargetIsWrittenTypeByType) {
  StartTarget();
  LoadSource();
  auto target = ProxyFor(*target_, PretendServer(redis::Engine::kRedis, {6, 2}));
  ASSERT_NE(target, nullptr);
  CliResult r = Migrate(source_->uri(), ProxyUri(*target));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.json_int("failed"), 0) << r.output;
  EXPECT_TRUE(TargetEqualsSource(/*stream_counters=*/false));
  // Redis 6.2 has no XSETID ENTRIESADDED or ENTRIESREAD: the proxy refuses them, so a copy that
  // sent them would have failed keys above.
}

// Redis 4.0 has no streams, no RESTORE ... ABSTTL and no SET ... PXAT: stream keys fail, each
// named with its type, and everything else arrives with its TTL.
TEST_F(MigrateVersionsTest, RedisFourTargetFailsOnlyStreams) {
  StartTarget();
  LoadSource();
  auto target = ProxyFor(*target_, PretendServer(redis::Engine::kRedis, {4, 0}));
  ASSERT_NE(target, nullptr);
  CliResult r = Migrate(source_->uri(), ProxyUri(*target));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("no streams")) << r.output;
  EXPECT_EQ(target->commands_seen("XADD"), 0u);
  redis::Connection src = Connect(*source_), dst = Connect(*target_);
  auto diffs = CompareDatabases(src, 0, dst, 0);
  ASSERT_TRUE(diffs.ok()) << diffs.status();
  ASSERT_FALSE(diffs->empty());
  for (const KeyDiff& diff : *diffs) {
    auto type = src.Command({"TYPE", diff.key});
    ASSERT_TRUE(type.ok());
    EXPECT_EQ(type->str(), "stream") << DescribeDiff(diff);
    EXPECT_EQ(diff.problem, "missing in target") << DescribeDiff(diff);
  }
  EXPECT_EQ(r.json_int("failed"), static_cast<int64_t>(diffs->size())) << r.output;
}

// A Redis 4.0 source: no SCAN ... TYPE (the probe's TYPE filters instead), no PEXPIRETIME.
TEST_F(MigrateVersionsTest, TypeFilterOnRedisFourSource) {
  StartTarget();
  LoadSource();
  auto source = ProxyFor(*source_, PretendServer(redis::Engine::kRedis, {4, 0}));
  ASSERT_NE(source, nullptr);
  CliResult r = Migrate(ProxyUri(*source), target_->uri(), {"--type", "hash"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(source->commands_seen("PEXPIRETIME"), 0u);
  redis::Connection src = Connect(*source_), dst = Connect(*target_);
  auto diffs = CompareDatabases(src, 0, dst, 0);
  ASSERT_TRUE(diffs.ok()) << diffs.status();
  int hashes = 0;
  for (const KeyDiff& diff : *diffs) {
    auto type = src.Command({"TYPE", diff.key});
    ASSERT_TRUE(type.ok());
    EXPECT_NE(type->str(), "hash") << DescribeDiff(diff);
  }
  auto keys = dst.Command({"KEYS", "*"});
  ASSERT_TRUE(keys.ok());
  for (size_t i = 0; i < keys->size(); ++i) {
    auto type = dst.Command({"TYPE", keys->element(i).str()});
    ASSERT_TRUE(type.ok());
    EXPECT_EQ(type->str(), "hash");
    ++hashes;
  }
  EXPECT_GT(hashes, 0);
}

// An ACL without RESTORE: the whole job goes type by type, said once before the copy.
TEST_F(MigrateVersionsTest, TargetUserWithoutRestoreCopiesTypeByType) {
  RedisServerOptions options;
  options.acl_lines = {"user norestore on >pw ~* &* +@all -restore"};
  StartTarget(options);
  LoadSource();
  CliResult r = Migrate(source_->uri(), WithUser(target_->uri(), "norestore"), {},
                        {{"FERRY_TO_PASSWORD", "pw"}});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("the target refuses RESTORE")) << r.output;
  EXPECT_TRUE(TargetEqualsSource());
}

// RESTORE disabled with rename-command, as some managed services do.
TEST_F(MigrateVersionsTest, TargetWithRestoreRenamedCopiesTypeByType) {
  RedisServerOptions options;
  options.rename_commands = {{"RESTORE", ""}};
  StartTarget(options);
  LoadSource();
  CliResult r = Migrate(source_->uri(), target_->uri());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("type by type")) << r.output;
  EXPECT_TRUE(TargetEqualsSource());
}

// Type by type needs ferry's temporary keys: a user whose key patterns leave them out is refused
// before any write, with the pattern to add.
TEST_F(MigrateVersionsTest, TypeByTypeWithoutTempKeyPatternIsRefused) {
  RedisServerOptions options;
  options.acl_lines = {"user app on >pw ~mixed:* ~edge:* &* +@all -restore"};
  StartTarget(options);
  LoadSource();
  CliResult r =
      Migrate(source_->uri(), WithUser(target_->uri(), "app"), {}, {{"FERRY_TO_PASSWORD", "pw"}});
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_THAT(r.output, HasSubstr("~ferry:tmp:*")) << r.output;
  EXPECT_EQ(DbSize(*target_), 0);
}

// --copy-path typed between equal servers, with --on-conflict skip run twice: the second run
// finds every key already equal (copied, not skipped) and leaves no temporary key behind.
TEST_F(MigrateVersionsTest, ForcedTypedCopyIsIdempotent) {
  StartTarget();
  LoadSource();
  CliResult first = Migrate(source_->uri(), target_->uri(), {"--copy-path", "typed"});
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_TRUE(TargetEqualsSource());
  CliResult second =
      Migrate(source_->uri(), target_->uri(), {"--copy-path", "typed", "--on-conflict", "skip"});
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_EQ(second.json_int("skipped"), 0) << second.output;
  EXPECT_TRUE(TargetEqualsSource());
  redis::Connection dst = Connect(*target_);
  auto temps = dst.Command({"KEYS", "ferry:*"});
  ASSERT_TRUE(temps.ok());
  EXPECT_EQ(temps->size(), 0u);
}

// Sizes are probed before any value is read (MEMORY USAGE, or STRLEN where a shard holds mostly
// strings); --big-key-bytes off skips that, one command per key less on the source.
TEST_F(MigrateVersionsTest, BigKeyProbeCanBeTurnedOff) {
  StartTarget();
  LoadSource();
  for (const char* setting : {"1MiB", "off"}) {
    auto source = ProxyFor(*source_, RespProxyOptions());
    ASSERT_NE(source, nullptr);
    redis::Connection dst = Connect(*target_);
    ASSERT_TRUE(dst.Command({"FLUSHALL"}).ok());
    CliResult r = Migrate(ProxyUri(*source), target_->uri(), {"--big-key-bytes", setting});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_TRUE(TargetEqualsSource());
    const uint64_t probes = source->commands_seen("MEMORY") + source->commands_seen("STRLEN");
    if (std::string(setting) == "off") {
      EXPECT_LE(probes, 10u) << "preflight's sample only";
    } else {
      EXPECT_GE(probes, static_cast<uint64_t>(kMixedKeys));
    }
  }
}

TEST_F(MigrateVersionsTest, BadCopyPathIsAUsageError) {
  StartTarget();
  CliResult r = Migrate(source_->uri(), target_->uri(), {"--copy-path", "fast"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("--copy-path must be auto or typed"));
  r = Migrate(source_->uri(), target_->uri(), {"--big-key-bytes", "12q"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("--big-key-bytes must be a size"));
}

}  // namespace
}  // namespace ferry::testing
