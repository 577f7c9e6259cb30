// `ferry preflight` (issue 12, item 2; issue 11, item 6) between real redis-servers: each
// finding triggered on purpose and checked in the JSON output, the exit codes, and that
// preflight writes nothing to either side unless given a probe key.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/redis/capabilities.h"
#include "common/testing/redis_cluster.h"
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

// The messages of the findings of `severity` and `check` in a --output json line.
std::vector<std::string> Findings(const std::string& json, const std::string& severity,
                                  const std::string& check) {
  const std::string prefix =
      absl::StrCat("{\"severity\":\"", severity, "\",\"check\":\"", check, "\",\"message\":\"");
  std::vector<std::string> out;
  for (size_t at = json.find(prefix); at != std::string::npos; at = json.find(prefix, at + 1)) {
    const size_t start = at + prefix.size();
    size_t end = start;
    while (end < json.size() && !(json[end] == '"' && json[end - 1] != '\\')) ++end;
    out.push_back(json.substr(start, end - start));
  }
  return out;
}

// A finding of `severity` and `check` whose message has `text`.
::testing::AssertionResult HasFinding(const CliResult& r, const std::string& severity,
                                      const std::string& check, const std::string& text) {
  for (const std::string& message : Findings(r.json_line(), severity, check)) {
    if (absl::StrContains(message, text)) return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "no " << severity << " [" << check << "] with \"" << text << "\" in:\n"
         << r.output;
}

// A count of the summary ("errors", "warnings").
int64_t Summary(const CliResult& r, const std::string& field) {
  const std::string line = r.json_line();
  const std::string key = absl::StrCat("\"", field, "\":");
  const size_t at = line.find(key, line.find("\"summary\""));
  int64_t value = -1;
  if (at == std::string::npos) return value;
  const std::string rest = line.substr(at + key.size());
  (void)absl::SimpleAtoi(rest.substr(0, rest.find_first_of(",}")), &value);
  return value;
}

// What a write leaves behind on a server: keys per database, the count of changes since the last
// save, and every write command's INFO commandstats line (calls, rejected and failed calls).
std::map<std::string, std::string> WriteTrace(const RedisServer& server) {
  redis::Connection conn = Connect(server);
  std::map<std::string, std::string> trace;
  for (const char* section : {"keyspace", "persistence", "commandstats"}) {
    absl::StatusOr<redis::Reply> info = conn.Command({"INFO", section});
    EXPECT_TRUE(info.ok()) << info.status();
    if (!info.ok()) continue;
    for (absl::string_view line : absl::StrSplit(info->str(), "\r\n")) {
      const std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits(':', 1));
      static const std::vector<std::string> kWrites = {
          "set",    "restore", "del",      "unlink", "rename",  "renamenx",  "pexpire",
          "expire", "setex",   "psetex",   "hset",   "rpush",   "sadd",      "zadd",
          "xadd",   "copy",    "move",     "getdel", "incr",    "append",    "setnx",
          "mset",   "flushdb", "flushall", "lpush",  "persist", "pexpireat", "expireat"};
      bool keep = absl::StartsWith(kv.first, "db") || kv.first == "rdb_changes_since_last_save";
      for (const std::string& w : kWrites) keep = keep || kv.first == "cmdstat_" + w;
      if (keep) trace[kv.first] = kv.second;
    }
  }
  absl::StatusOr<redis::Reply> size = conn.Command({"DBSIZE"});
  if (size.ok()) trace["dbsize"] = absl::StrCat(size->integer());
  return trace;
}

class PreflightTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(RequireRedisServerBinary().ok()); }

  // A source of `keys` keys of 100 bytes from DEBUG POPULATE (about 100 bytes of dataset each).
  void StartSource(int keys, RedisServerOptions options = {}) {
    options.extra_config.push_back("enable-debug-command yes");
    source_ = StartServer(std::move(options));
    ASSERT_NE(source_, nullptr);
    if (keys == 0) return;
    redis::Connection src = Connect(*source_);
    ASSERT_TRUE(src.Command({"DEBUG", "POPULATE", absl::StrCat(keys), "key", "100"}).ok());
  }
  void StartTarget(RedisServerOptions options = {}) {
    target_ = StartServer(std::move(options));
    ASSERT_NE(target_, nullptr);
  }

  CliResult Preflight(const std::string& from, const std::string& to,
                      const std::vector<std::string>& extra = {},
                      const std::vector<std::pair<std::string, std::string>>& env = {}) {
    std::vector<std::string> args = {"preflight", "--from", from, "--to", to, "--output", "json"};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunFerry(args, env, absl::Minutes(1));
  }
  CliResult Preflight(const std::vector<std::string>& extra = {}) {
    return Preflight(source_->uri(), target_->uri(), extra);
  }

  std::unique_ptr<RedisServer> source_;
  std::unique_ptr<RedisServer> target_;
};

TEST_F(PreflightTest, TooSmallTargetWithNoevictionIsAnError) {
  StartSource(100000);
  RedisServerOptions small;
  small.maxmemory = "4mb";
  StartTarget(small);
  CliResult r = Preflight();
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(HasFinding(r, "error", "memory", "is more than the target's maxmemory (4194304"));
  EXPECT_TRUE(HasFinding(r, "error", "memory",
                         "with maxmemory-policy noeviction it then refuses "
                         "writes with OOM"));
  EXPECT_GE(Summary(r, "errors"), 1);
  EXPECT_EQ(Summary(r, "exit_code"), 2);
  // The text output says the same, with the verdict.
  CliResult text = RunFerry({"preflight", "--from", source_->uri(), "--to", target_->uri()});
  EXPECT_EQ(text.exit_code, 2) << text.output;
  EXPECT_THAT(text.output, HasSubstr("error   [memory] the source's dataset"));
  EXPECT_THAT(text.output, HasSubstr("the job would not start, or would stop part way (exit 2)"));
  EXPECT_EQ(DbSize(*target_), 0);
}

TEST_F(PreflightTest, TooSmallEvictingTargetIsAnErrorThatAlsoStopsTheJob) {
  StartSource(100000);
  RedisServerOptions small;
  small.maxmemory = "4mb";
  small.extra_config = {"maxmemory-policy allkeys-lru"};
  StartTarget(small);
  CliResult r = Preflight();
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(HasFinding(r, "error", "memory",
                         "maxmemory-policy is allkeys-lru: it would evict "
                         "keys silently"));
  // The same check in the job: refused before any write, with the same words.
  CliResult job =
      RunFerry({"migrate", "--from", source_->uri(), "--to", target_->uri(), "--progress", "none"});
  EXPECT_EQ(job.exit_code, 2) << job.output;
  EXPECT_THAT(job.output, HasSubstr("maxmemory-policy is allkeys-lru: it would evict keys"));
  EXPECT_EQ(DbSize(*target_), 0);
}

TEST_F(PreflightTest, TargetThatFitsSaysSoAndEstimatesTheDuration) {
  StartSource(20000);
  RedisServerOptions roomy;
  roomy.maxmemory = "256mb";
  StartTarget(roomy);
  CliResult r = Preflight();
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(Summary(r, "errors"), 0) << r.output;
  EXPECT_TRUE(HasFinding(r, "info", "memory", "fits"));
  EXPECT_TRUE(HasFinding(r, "info", "copy-path", "values are copied with DUMP/RESTORE"));
  EXPECT_TRUE(HasFinding(r, "info", "server", "source: Redis 7.0"));
  EXPECT_TRUE(HasFinding(r, "info", "server", "20000 keys (db 0: 20000)"));
  EXPECT_TRUE(HasFinding(r, "info", "estimate", "an estimate: 2000 keys read with SCAN"));
  EXPECT_EQ(Summary(r, "source_keys"), 20000);
}

TEST_F(PreflightTest, SourceUserWithoutScanIsAPermissionError) {
  RedisServerOptions options;
  options.acl_lines = {"user noscan on >pw ~* &* +@all -scan"};
  StartSource(500, options);
  StartTarget();
  CliResult r = Preflight(WithUser(source_->uri(), "noscan"), target_->uri(), {},
                          {{"FERRY_FROM_PASSWORD", "pw"}});
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_TRUE(HasFinding(r, "error", "permissions", "the source does not allow SCAN"));
  // Later checks still ran: the target was inspected.
  EXPECT_TRUE(HasFinding(r, "info", "server", "target: Redis 7.0"));
}

TEST_F(PreflightTest, EveryMissingPermissionIsReportedNotOnlyTheFirst) {
  RedisServerOptions source_options;
  source_options.acl_lines = {"user nomget on >pw ~* &* +@all -mget"};
  StartSource(500, source_options);
  RedisServerOptions target_options;
  target_options.acl_lines = {"user noset on >pw ~* &* +@all -set"};
  StartTarget(target_options);
  CliResult r = Preflight(WithUser(source_->uri(), "nomget"), WithUser(target_->uri(), "noset"), {},
                          {{"FERRY_FROM_PASSWORD", "pw"}, {"FERRY_TO_PASSWORD", "pw"}});
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_TRUE(HasFinding(r, "error", "permissions", "the source does not allow MGET"));
  EXPECT_TRUE(HasFinding(r, "error", "permissions", "the target does not allow SET"));
  EXPECT_EQ(Summary(r, "errors"), 2) << r.output;
}

TEST_F(PreflightTest, SourceUserWithoutTypeIsAWarningUnlessEveryKeyNeedsIt) {
  RedisServerOptions options;
  options.acl_lines = {"user notype on >pw ~* &* +@all -type"};
  StartSource(500, options);
  StartTarget();
  const std::vector<std::pair<std::string, std::string>> env = {{"FERRY_FROM_PASSWORD", "pw"}};
  CliResult r = Preflight(WithUser(source_->uri(), "notype"), target_->uri(), {}, env);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(HasFinding(r, "warning", "permissions", "the source does not allow TYPE"));
  EXPECT_TRUE(HasFinding(r, "warning", "permissions", "keys over --big-key-bytes"));
  // Copied type by type, every key's TYPE is read first.
  CliResult typed =
      Preflight(WithUser(source_->uri(), "notype"), target_->uri(), {"--copy-path", "typed"}, env);
  EXPECT_EQ(typed.exit_code, 3) << typed.output;
  EXPECT_TRUE(HasFinding(typed, "error", "permissions", "the source does not allow TYPE"));
}

TEST_F(PreflightTest, TargetUserWithoutRestoreMeansTypeByType) {
  StartSource(500);
  RedisServerOptions options;
  options.acl_lines = {"user norestore on >pw ~* &* +@all -restore"};
  StartTarget(options);
  CliResult r = Preflight(source_->uri(), WithUser(target_->uri(), "norestore"), {},
                          {{"FERRY_TO_PASSWORD", "pw"}});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(HasFinding(r, "warning", "copy-path", "keys are copied type by type"));
  EXPECT_TRUE(HasFinding(r, "warning", "copy-path", "the target refuses RESTORE"));
  EXPECT_TRUE(HasFinding(r, "info", "permissions", "with ACL DRYRUN for user 'norestore'"));
  EXPECT_EQ(Summary(r, "errors"), 0);
  CliResult strict = Preflight(source_->uri(), WithUser(target_->uri(), "norestore"), {"--strict"},
                               {{"FERRY_TO_PASSWORD", "pw"}});
  EXPECT_EQ(strict.exit_code, 1) << strict.output;
}

TEST_F(PreflightTest, OlderTargetVersionNeedsTypeByType) {
  StartSource(500);
  StartTarget();
  auto target = ProxyFor(*target_, PretendServer(redis::Engine::kRedis, {6, 2}));
  ASSERT_NE(target, nullptr);
  CliResult r = Preflight(source_->uri(), ProxyUri(*target));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(HasFinding(r, "info", "server", "target: Redis 6.2"));
  EXPECT_TRUE(HasFinding(r, "warning", "copy-path",
                         "writes DUMP payload version 10, which the target (Redis 6.2, version 9) "
                         "cannot read"));
}

TEST_F(PreflightTest, NewerSourceVersionNeedsTypeByType) {
  StartSource(500);
  StartTarget();
  auto source = ProxyFor(*source_, PretendServer(redis::Engine::kRedis, {7, 4}));
  ASSERT_NE(source, nullptr);
  CliResult r = Preflight(ProxyUri(*source), target_->uri());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(HasFinding(r, "info", "server", "DUMP payload version 12"));
  EXPECT_TRUE(HasFinding(r, "warning", "copy-path", "keys are copied type by type"));
}

TEST_F(PreflightTest, NonEmptyTargetIsAWarningTheJobStoresToo) {
  StartSource(100);
  StartTarget();
  redis::Connection dst = Connect(*target_);
  for (const char* key : {"a", "b", "c"}) ASSERT_TRUE(dst.Command({"SET", key, "x"}).ok());
  CliResult r = Preflight();
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(HasFinding(r, "warning", "target-keys", "the target is not empty (3 keys)"));
  EXPECT_EQ(Preflight({"--strict"}).exit_code, 1);
  CliResult job =
      RunFerry({"migrate", "--from", source_->uri(), "--to", target_->uri(), "--progress", "none"});
  EXPECT_EQ(job.exit_code, 0) << job.output;
  EXPECT_THAT(job.output, HasSubstr("warning: the target is not empty (3 keys)"));
}

TEST_F(PreflightTest, LiveWithNotificationsOffIsAnError) {
  StartSource(100);
  StartTarget();
  CliResult r = Preflight({"--live"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(HasFinding(r, "error", "notifications", "notify-keyspace-events is '', which lacks"));
  EXPECT_TRUE(HasFinding(r, "error", "notifications", "notify-keyspace-events = KA"));
}

TEST_F(PreflightTest, LiveWithNotificationsOnReadsThemWithConfig) {
  RedisServerOptions options;
  options.extra_config = {"notify-keyspace-events KA"};
  StartSource(100, options);
  StartTarget();
  CliResult r = Preflight({"--live"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(HasFinding(r, "info", "notifications", "(read with CONFIG GET)"));
}

TEST_F(PreflightTest, LiveSourceUserThatMayNotSubscribeIsAPermissionError) {
  RedisServerOptions options;
  options.extra_config = {"notify-keyspace-events KA"};
  options.acl_lines = {"user nochannels on >pw ~* resetchannels +@all"};
  StartSource(100, options);
  StartTarget();
  CliResult r = Preflight(WithUser(source_->uri(), "nochannels"), target_->uri(), {"--live"},
                          {{"FERRY_FROM_PASSWORD", "pw"}});
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_TRUE(HasFinding(r, "error", "permissions", "may not follow keyspace notifications"));
}

// ElastiCache refuses CONFIG: without a probe key preflight can only say so; with one it writes
// that key (PX 2000) and waits for its events.
TEST_F(PreflightTest, LiveWithoutConfigProbesWithTheProbeKey) {
  RedisServerOptions options;
  options.extra_config = {"notify-keyspace-events KA"};
  options.rename_commands = {{"CONFIG", ""}};
  StartSource(100, options);
  StartTarget();
  CliResult unchecked = Preflight({"--live"});
  EXPECT_EQ(unchecked.exit_code, 0) << unchecked.output;
  EXPECT_TRUE(HasFinding(unchecked, "warning", "notifications", "CONFIG is refused"));
  EXPECT_TRUE(HasFinding(unchecked, "warning", "notifications",
                         "set notify-keyspace-events = KA in the cluster's parameter group"));
  EXPECT_TRUE(HasFinding(unchecked, "warning", "notifications", "give --probe-key"));

  CliResult probed = Preflight({"--live", "--probe-key", "ferry:probe:test"});
  EXPECT_EQ(probed.exit_code, 0) << probed.output;
  EXPECT_TRUE(HasFinding(probed, "info", "notifications",
                         "wrote the probe key 'ferry:probe:test' with PX 2000"));
  EXPECT_TRUE(HasFinding(probed, "info", "notifications", "set, expire and expired events"));
  redis::Connection src = Connect(*source_);
  absl::StatusOr<redis::Reply> exists = src.Command({"EXISTS", "ferry:probe:test"});
  ASSERT_TRUE(exists.ok());
  EXPECT_EQ(exists->integer(), 0);
  EXPECT_EQ(DbSize(*source_), 100);
}

TEST_F(PreflightTest, LiveWithoutConfigAndNotificationsOffFailsTheProbe) {
  RedisServerOptions options;
  options.rename_commands = {{"CONFIG", ""}};
  StartSource(100, options);
  StartTarget();
  CliResult r = Preflight({"--live", "--probe-key", "ferry:probe:test"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(HasFinding(r, "error", "notifications", "no set, expire, expired event arrived"));
  EXPECT_TRUE(HasFinding(r, "error", "notifications", "notify-keyspace-events = KA"));
}

TEST_F(PreflightTest, BadPasswordExitsThree) {
  StartSource(100);
  RedisServerOptions options;
  options.requirepass = "right-password";
  StartTarget(options);
  CliResult r = Preflight(source_->uri(), target_->uri(), {}, {{"FERRY_TO_PASSWORD", "wrong"}});
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_EQ(Findings(r.json_line(), "error", "connect").size(), 1u) << r.output;
  EXPECT_THAT(r.output, Not(HasSubstr("wrong")));
  EXPECT_THAT(r.output, Not(HasSubstr("right-password")));
  // The source was checked all the same.
  EXPECT_TRUE(HasFinding(r, "info", "server", "source: Redis 7.0"));
}

TEST_F(PreflightTest, TlsIsCheckedWithTheGivenCa) {
  RedisServerOptions tls;
  tls.tls = true;
  StartSource(100, tls);
  StartTarget();
  CliResult r = Preflight(source_->uri(), target_->uri(), {"--from-cacert", source_->ca_file()});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(HasFinding(r, "info", "connect", "over TLS, its certificate verified, no AUTH"));
  absl::StatusOr<std::string> other = GenerateUnrelatedCa(target_->dir());
  ASSERT_TRUE(other.ok()) << other.status();
  CliResult wrong = Preflight(source_->uri(), target_->uri(), {"--from-cacert", *other});
  EXPECT_EQ(wrong.exit_code, 3) << wrong.output;
  EXPECT_EQ(Findings(wrong.json_line(), "error", "connect").size(), 1u) << wrong.output;
}

TEST_F(PreflightTest, WritesNothingToEitherSide) {
  RedisServerOptions options;
  options.extra_config = {"notify-keyspace-events KA"};
  StartSource(3000, options);
  StartTarget();
  redis::Connection dst = Connect(*target_);
  ASSERT_TRUE(dst.Command({"SET", "already", "there"}).ok());
  const auto source_before = WriteTrace(*source_);
  const auto target_before = WriteTrace(*target_);
  for (const std::vector<std::string>& extra :
       {std::vector<std::string>{}, {"--live"}, {"--on-conflict", "skip"}}) {
    CliResult r = Preflight(extra);
    EXPECT_EQ(r.exit_code, 0) << r.output;
  }
  EXPECT_EQ(WriteTrace(*source_), source_before);
  EXPECT_EQ(WriteTrace(*target_), target_before);
}

// A user that may not run ACL DRYRUN: without a probe key the target's writes are not checked
// (and nothing is sent); with one they are probed on that key, which is not created.
TEST_F(PreflightTest, WithoutDryRunWritesAreCheckedOnlyWithAProbeKey) {
  StartSource(500);
  RedisServerOptions options;
  options.acl_lines = {"user nodryrun on >pw ~* &* +@all -acl"};
  StartTarget(options);
  const std::string to = WithUser(target_->uri(), "nodryrun");
  const auto target_before = WriteTrace(*target_);
  CliResult unchecked = Preflight(source_->uri(), to, {}, {{"FERRY_TO_PASSWORD", "pw"}});
  EXPECT_EQ(unchecked.exit_code, 0) << unchecked.output;
  EXPECT_TRUE(HasFinding(unchecked, "warning", "permissions",
                         "are not checked: ACL DRYRUN is not available to the target user"));
  EXPECT_TRUE(HasFinding(unchecked, "warning", "permissions", "(give --probe-key to check)"));
  EXPECT_EQ(WriteTrace(*target_), target_before);

  CliResult probed = Preflight(source_->uri(), to, {"--probe-key", "ferry:probe:w"},
                               {{"FERRY_TO_PASSWORD", "pw"}});
  EXPECT_EQ(probed.exit_code, 0) << probed.output;
  EXPECT_TRUE(HasFinding(probed, "info", "permissions", "on the probe key 'ferry:probe:w'"));
  EXPECT_EQ(DbSize(*target_), 0);
}

// Cluster on both sides: each primary's notifications for --live, the slots a target serves,
// and the database rules of a cluster target, all in one run.
TEST_F(PreflightTest, ClustersTopologySlotsAndDatabases) {
  RedisServerOptions base;
  base.extra_config = {"notify-keyspace-events KA"};
  auto source = RedisCluster::Start(3, 0, base);
  ASSERT_TRUE(source.ok()) << source.status();
  auto target = RedisCluster::Start(3, 0);
  ASSERT_TRUE(target.ok()) << target.status();
  CliResult r = Preflight((*source)->uri(), (*target)->uri(), {"--live"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(HasFinding(r, "info", "server",
                         "source: Redis 7.0 (redis_version 7.0.15), Redis "
                         "Cluster of 3 primaries"));
  EXPECT_TRUE(HasFinding(r, "info", "server", "serving 16384 of 16384 slots"));
  EXPECT_EQ(Findings(r.json_line(), "info", "notifications").size(), 3u) << r.output;

  // A target whose seed no longer serves slots 0-99: keys there would fail.
  redis::Connection seed = Connect((*target)->seed());
  ASSERT_TRUE(seed.Command({"CLUSTER", "DELSLOTSRANGE", "0", "99"}).ok());
  StartSource(100);
  redis::Connection src = Connect(*source_);
  ASSERT_TRUE(src.Select(3).ok());
  ASSERT_TRUE(src.Command({"SET", "in-db-3", "x"}).ok());
  CliResult partial = Preflight(source_->uri(), (*target)->uri());
  EXPECT_EQ(partial.exit_code, 2) << partial.output;
  EXPECT_TRUE(HasFinding(partial, "error", "cluster",
                         "the target cluster serves 16284 of 16384 "
                         "slots"));
  EXPECT_TRUE(HasFinding(partial, "error", "databases",
                         "which has only db 0, and the source has "
                         "keys in 2 databases (0, 3)"));
}

// A cluster target fills up primary by primary: one small primary is too small for its share of
// the source's dataset however roomy the others are (the sum of their maxmemory fits).
TEST_F(PreflightTest, ClusterTargetFitIsCheckedPerPrimary) {
  StartSource(100000);
  auto target = RedisCluster::Start(3, 0);
  ASSERT_TRUE(target.ok()) << target.status();
  redis::Connection src = Connect(*source_);
  absl::StatusOr<redis::Reply> memory = src.Command({"INFO", "memory"});
  ASSERT_TRUE(memory.ok()) << memory.status();
  int64_t dataset = 0;
  ASSERT_TRUE(absl::SimpleAtoi(redis::InfoField(memory->str(), "used_memory_dataset"), &dataset));
  ASSERT_GT(dataset, 4 << 20);
  redis::Connection small = Connect((*target)->node(0));
  absl::StatusOr<redis::Reply> used = small.Command({"INFO", "memory"});
  ASSERT_TRUE(used.ok()) << used.status();
  int64_t used_memory = 0;
  ASSERT_TRUE(absl::SimpleAtoi(redis::InfoField(used->str(), "used_memory"), &used_memory));
  // Room for a sixth of the dataset where a third (its 5461 slots) is to land.
  ASSERT_TRUE(
      small.Command({"CONFIG", "SET", "maxmemory", absl::StrCat(used_memory + dataset / 6)}).ok());
  for (int node : {1, 2}) {
    redis::Connection roomy = Connect((*target)->node(node));
    ASSERT_TRUE(roomy.Command({"CONFIG", "SET", "maxmemory", "1gb"}).ok());
  }
  CliResult r = Preflight(source_->uri(), (*target)->uri());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(HasFinding(
      r, "error", "memory",
      absl::StrCat("the share of the source's dataset that target primary ",
                   (*target)->node(0).endpoint().Address(), " will hold for its 5461 slots")));
  EXPECT_TRUE(HasFinding(r, "error", "memory", "is more than its maxmemory"));
  // With room on every primary it fits.
  ASSERT_TRUE(small.Command({"CONFIG", "SET", "maxmemory", "1gb"}).ok());
  CliResult roomy = Preflight(source_->uri(), (*target)->uri());
  EXPECT_EQ(roomy.exit_code, 0) << roomy.output;
  EXPECT_TRUE(HasFinding(roomy, "info", "memory", "fits: the share of the source's dataset"));
}

}  // namespace
}  // namespace ferry::testing
