// Tests of the test fixtures themselves (ferry_testing): processes, real redis-server
// processes in every flavour the integration tests use, and the key-by-key comparison that
// every copy test relies on. A comparison that missed a difference would make every copy test
// pass vacuously, so most cases here plant one difference and expect exactly it.

#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/testing/compare.h"
#include "common/testing/process.h"
#include "common/testing/redis_server.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace ferry::testing {
namespace {

// Sends one command and returns its reply as text: "(error) ..." for a failed status, the
// elements joined by ',' for an array.
std::string Cmd(redis::Connection& conn, std::initializer_list<absl::string_view> argv) {
  absl::StatusOr<redis::Reply> reply = conn.Command(argv);
  if (!reply.ok()) return absl::StrCat("(error) ", reply.status().ToString());
  if (reply->is_integer()) return absl::StrCat(reply->integer());
  if (reply->is_nil()) return "(nil)";
  if (reply->is_array()) {
    std::string joined;
    for (size_t i = 0; i < reply->size(); ++i) {
      absl::StrAppend(&joined, i == 0 ? "" : ",", reply->element(i).str());
    }
    return joined;
  }
  return std::string(reply->str());
}

// ---------------------------------------------------------------- processes

TEST(SubprocessTest, ReportsExitCodeAndSignal) {
  ASSERT_OK_AND_ASSIGN(Subprocess exits, Subprocess::Start({"sh", "-c", "exit 3"}));
  ASSERT_OK_AND_ASSIGN(int code, exits.Wait(absl::Seconds(10)));
  EXPECT_EQ(code, 3);
  EXPECT_FALSE(exits.running());

  ASSERT_OK_AND_ASSIGN(Subprocess sleeper, Subprocess::Start({"sleep", "30"}));
  EXPECT_EQ(sleeper.Wait(absl::Milliseconds(30)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  ASSERT_OK(sleeper.Signal(SIGTERM));
  ASSERT_OK_AND_ASSIGN(code, sleeper.Wait(absl::Seconds(10)));
  EXPECT_EQ(code, -SIGTERM);
}

TEST(SubprocessTest, AppliesEnvironmentWorkingDirAndLogFile) {
  const std::string dir = MakeTempDir("ferry-fixtures-");
  ASSERT_FALSE(dir.empty());
  SubprocessOptions options;
  options.env = {{"FERRY_FIXTURE_VAR", "from-the-test"}};
  options.working_dir = dir;
  options.log_file = dir + "/out.log";
  ASSERT_OK_AND_ASSIGN(
      Subprocess child,
      Subprocess::Start({"sh", "-c", "echo $FERRY_FIXTURE_VAR; pwd; echo oops >&2"}, options));
  ASSERT_OK_AND_ASSIGN(int code, child.Wait(absl::Seconds(10)));
  EXPECT_EQ(code, 0);
  const std::string log = FileTail(options.log_file);
  EXPECT_TRUE(absl::StrContains(log, "from-the-test")) << log;
  EXPECT_TRUE(absl::StrContains(log, std::filesystem::canonical(dir).string())) << log;
  EXPECT_TRUE(absl::StrContains(log, "oops")) << log;
  ASSERT_OK(RemoveTree(dir));
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST(SubprocessTest, MissingProgramIsNotFound) {
  EXPECT_EQ(Subprocess::Start({"ferry-no-such-program-xyz"}).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(SubprocessTest, DestructorKillsTheChild) {
  pid_t pid;
  {
    ASSERT_OK_AND_ASSIGN(Subprocess sleeper, Subprocess::Start({"sleep", "30"}));
    pid = sleeper.pid();
    ASSERT_EQ(kill(pid, 0), 0);
  }
  EXPECT_NE(kill(pid, 0), 0);  // Killed and reaped: the pid is gone.
}

TEST(ProcessTest, FreeTcpPortAndWaitFor) {
  const int port = FreeTcpPort();
  ASSERT_GT(port, 0);
  EXPECT_TRUE(TcpPortIsFree(port));
  int calls = 0;
  EXPECT_TRUE(WaitFor([&] { return ++calls == 3; }, absl::Seconds(5), absl::Milliseconds(1)).ok());
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(WaitFor([] { return false; }, absl::Milliseconds(20)).code(),
            absl::StatusCode::kDeadlineExceeded);
}

// ---------------------------------------------------------------- redis-server

TEST(RedisServerTest, PlainServerAnswersAndDies) {
  ASSERT_OK(RequireRedisServerBinary());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> server, RedisServer::Start());
  EXPECT_EQ(server->uri(), absl::StrCat("redis://127.0.0.1:", server->port()));
  EXPECT_GT(server->pid(), 0);
  ASSERT_OK_AND_ASSIGN(redis::Connection conn, server->Connect());
  EXPECT_EQ(Cmd(conn, {"PING"}), "PONG");
  EXPECT_EQ(Cmd(conn, {"SET", "k", "v"}), "OK");
  EXPECT_EQ(Cmd(conn, {"CONFIG", "GET", "save"}), "save,");  // The fixture disables RDB saves.

  const std::string dir = server->dir();
  server->Kill();
  EXPECT_FALSE(server->running());
  EXPECT_FALSE(server->Connect().ok());
  server.reset();
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST(RedisServerTest, MissingBinaryIsAFailureWithAHint) {
  const char* old_path = getenv("PATH");
  const std::string saved = old_path != nullptr ? old_path : "";
  setenv("PATH", "/nonexistent-ferry-dir", 1);
  absl::Status missing = RequireRedisServerBinary();
  absl::StatusOr<std::unique_ptr<RedisServer>> server = RedisServer::Start();
  setenv("PATH", saved.c_str(), 1);
  EXPECT_EQ(missing.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(missing.message(), "make deps")) << missing;
  EXPECT_EQ(server.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(RedisServerTest, BadConfigFailsFastWithTheServersOwnWords) {
  RedisServerOptions options;
  options.extra_config = {"no-such-directive yes"};
  absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<RedisServer>> server = RedisServer::Start(options);
  ASSERT_FALSE(server.ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_TRUE(absl::StrContains(server.status().message(), "no-such-directive")) << server.status();
}

TEST(RedisServerTest, PasswordAndAclUsers) {
  RedisServerOptions options;
  options.requirepass = "admin \"pass\"";  // Quoting in the config file matters.
  options.acl_lines = {"user ro on >ropw ~* +@read +@connection"};
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> server, RedisServer::Start(options));
  EXPECT_FALSE(absl::StrContains(server->uri(), "pass"));

  ASSERT_OK_AND_ASSIGN(redis::Connection admin, server->Connect());
  EXPECT_EQ(Cmd(admin, {"SET", "k", "v"}), "OK");

  redis::Endpoint anonymous = server->endpoint();
  anonymous.password.clear();
  absl::StatusOr<redis::Connection> conn = redis::Connection::Open(anonymous);
  absl::Status refused = conn.ok() ? conn->Command({"GET", "k"}).status() : conn.status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnauthenticated) << refused;

  redis::Endpoint ro = server->endpoint();
  ro.user = "ro";
  ro.password = "ropw";
  ASSERT_OK_AND_ASSIGN(redis::Connection reader, redis::Connection::Open(ro));
  EXPECT_EQ(Cmd(reader, {"GET", "k"}), "v");
  EXPECT_EQ(reader.Command({"SET", "k", "w"}).status().code(), absl::StatusCode::kPermissionDenied);
}

TEST(RedisServerTest, RenamedCommandsLikeElastiCache) {
  RedisServerOptions options;
  options.rename_commands = {{"CONFIG", ""}, {"FLUSHALL", "ferry-flushall"}};
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> server, RedisServer::Start(options));
  ASSERT_OK_AND_ASSIGN(redis::Connection conn, server->Connect());
  EXPECT_EQ(conn.Command({"CONFIG", "GET", "save"}).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_FALSE(conn.Command({"FLUSHALL"}).ok());
  EXPECT_EQ(server->CommandName("flushall"), "ferry-flushall");
  EXPECT_EQ(Cmd(conn, {"SET", "k", "v"}), "OK");
  server->FlushAll();
  EXPECT_EQ(Cmd(conn, {"DBSIZE"}), "0");
}

TEST(RedisServerTest, TlsServerTrustsOnlyItsCa) {
  RedisServerOptions options;
  options.tls = true;
  options.requirepass = "pw";
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> server, RedisServer::Start(options));
  EXPECT_EQ(server->uri(), absl::StrCat("rediss://localhost:", server->port()));
  ASSERT_FALSE(server->ca_file().empty());
  ASSERT_OK_AND_ASSIGN(redis::Connection conn, server->Connect());
  EXPECT_EQ(Cmd(conn, {"PING"}), "PONG");

  ASSERT_OK_AND_ASSIGN(std::string other_ca, GenerateUnrelatedCa(server->dir()));
  redis::Endpoint wrong_ca = server->endpoint();
  wrong_ca.ca_file = other_ca;
  absl::StatusOr<redis::Connection> refused = redis::Connection::Open(wrong_ca);
  EXPECT_TRUE(!refused.ok() || !refused->Command({"PING"}).ok())
      << "a connection trusting an unrelated CA was accepted";

  redis::Endpoint plain = server->endpoint();
  plain.tls = false;
  absl::StatusOr<redis::Connection> cleartext = redis::Connection::Open(plain);
  EXPECT_TRUE(!cleartext.ok() || !cleartext->Command({"PING"}).ok());
}

TEST(RedisServerTest, RestartKeepsOrDropsData) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> server, RedisServer::Start());
  const int port = server->port();
  {
    ASSERT_OK_AND_ASSIGN(redis::Connection conn, server->Connect(3));
    EXPECT_EQ(Cmd(conn, {"SET", "kept", "yes"}), "OK");
  }
  ASSERT_OK(server->Restart(/*keep_data=*/true));
  EXPECT_EQ(server->port(), port);
  {
    ASSERT_OK_AND_ASSIGN(redis::Connection conn, server->Connect(3));
    EXPECT_EQ(Cmd(conn, {"GET", "kept"}), "yes");
  }
  ASSERT_OK(server->Restart(/*keep_data=*/false));
  {
    ASSERT_OK_AND_ASSIGN(redis::Connection conn, server->Connect(3));
    EXPECT_EQ(Cmd(conn, {"GET", "kept"}), "(nil)");
  }
  ASSERT_OK(server->Stop());
  EXPECT_FALSE(server->running());
}

TEST(RedisServerTest, ClusterModeNode) {
  RedisServerOptions options;
  options.cluster = true;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> server, RedisServer::Start(options));
  ASSERT_OK_AND_ASSIGN(redis::Connection conn, server->Connect());
  EXPECT_EQ(redis::InfoField(Cmd(conn, {"INFO", "cluster"}), "cluster_enabled"), "1");
}

// ---------------------------------------------------------------- comparison

constexpr int kKeys = 1300;  // More than one SCAN batch.
constexpr uint64_t kSeed = 7;

std::string MixedKey(int i, absl::string_view kind) {
  return absl::StrCat("mixed:", kSeed, ":", i, ":", kind);
}

class CompareTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(RequireRedisServerBinary());
    ASSERT_OK_AND_ASSIGN(source_, RedisServer::Start());
    ASSERT_OK_AND_ASSIGN(target_, RedisServer::Start());
    ASSERT_OK_AND_ASSIGN(redis::Connection s, source_->Connect());
    ASSERT_OK_AND_ASSIGN(redis::Connection t, target_->Connect());
    src_.emplace(std::move(s));
    dst_.emplace(std::move(t));
    ASSERT_OK(LoadMixedData(*src_, 0, kKeys, kSeed, 0.3));
  }

  // problem by key, for one exact expectation per test.
  static std::map<std::string, std::string> ByKey(const std::vector<KeyDiff>& diffs) {
    std::map<std::string, std::string> by_key;
    for (const KeyDiff& d : diffs) by_key[d.key] += d.problem;
    return by_key;
  }

  // The first mixed key of `kind` (an index modulo 13) whose TTL state is `with_ttl`.
  std::string KeyOfKind(int kind, absl::string_view name, bool with_ttl) {
    for (int i = kind; i < kKeys; i += 13) {
      std::string key = MixedKey(i, name);
      if ((Cmd(*src_, {"PTTL", key}) != "-1") == with_ttl) return key;
    }
    ADD_FAILURE() << "no key of kind " << name;
    return "";
  }

  std::unique_ptr<RedisServer> source_;
  std::unique_ptr<RedisServer> target_;
  std::optional<redis::Connection> src_;
  std::optional<redis::Connection> dst_;
};

TEST_F(CompareTest, LoaderWritesEveryTypeWithSomeTtls) {
  EXPECT_EQ(Cmd(*src_, {"DBSIZE"}), absl::StrCat(kKeys));
  EXPECT_EQ(Cmd(*src_, {"TYPE", MixedKey(5, "hash")}), "hash");
  EXPECT_EQ(Cmd(*src_, {"TYPE", MixedKey(9, "stream")}), "stream");
  EXPECT_EQ(Cmd(*src_, {"TYPE", MixedKey(11, "geo")}), "zset");
  EXPECT_EQ(Cmd(*src_, {"GET", MixedKey(3, "empty")}), "");
  ASSERT_OK_AND_ASSIGN(redis::Reply pending,
                       src_->Command({"XPENDING", MixedKey(9, "stream"), "g1"}));
  ASSERT_TRUE(pending.is_array());
  EXPECT_EQ(pending.element(0).integer(), 1);

  // db0:keys=1300,expires=N,avg_ttl=M with N near 30% of the keys.
  std::string db0 = redis::InfoField(Cmd(*src_, {"INFO", "keyspace"}), "db0");
  absl::string_view rest = db0;
  rest.remove_prefix(std::min(rest.size(), rest.find("expires=") + 8));
  int expires = 0;
  ASSERT_TRUE(absl::SimpleAtoi(rest.substr(0, rest.find(',')), &expires)) << db0;
  EXPECT_GT(expires, kKeys / 5);
  EXPECT_LT(expires, kKeys * 2 / 5);
}

TEST_F(CompareTest, ServerEqualsItself) {
  ASSERT_OK_AND_ASSIGN(redis::Connection again, source_->Connect());
  EXPECT_TRUE(SameData(*src_, 0, again, 0));
  EXPECT_TRUE(SameData(*src_, 0, *src_, 0));  // One connection on both sides.
}

TEST_F(CompareTest, EmptyTargetMissesEveryKey) {
  ASSERT_OK_AND_ASSIGN(std::vector<KeyDiff> diffs, CompareDatabases(*src_, 0, *dst_, 0));
  ASSERT_EQ(diffs.size(), static_cast<size_t>(kKeys));
  for (const KeyDiff& d : diffs) EXPECT_EQ(d.problem, "missing in target") << DescribeDiff(d);
  EXPECT_FALSE(SameData(*src_, 0, *dst_, 0));
}

TEST_F(CompareTest, SameSeedLoadsEqualData) {
  ASSERT_OK(LoadMixedData(*dst_, 0, kKeys, kSeed, 0.3));
  EXPECT_TRUE(SameData(*src_, 0, *dst_, 0));
  EXPECT_TRUE(SameData(*src_, *dst_));
}

TEST_F(CompareTest, ReportsEachPlantedDifference) {
  ASSERT_OK(LoadMixedData(*dst_, 0, kKeys, kSeed, 0.3));
  const std::string str = KeyOfKind(0, "ascii", false);
  const std::string hash = KeyOfKind(5, "hash", false);
  const std::string stream = KeyOfKind(9, "stream", false);
  const std::string hll = KeyOfKind(10, "hll", false);
  const std::string set = KeyOfKind(7, "set", false);
  const std::string with_ttl = KeyOfKind(6, "list", true);
  const std::string no_ttl = KeyOfKind(8, "zset", false);
  const std::string gone = KeyOfKind(12, "bitmap", false);
  EXPECT_EQ(Cmd(*dst_, {"SET", str, "changed"}), "OK");
  EXPECT_EQ(Cmd(*dst_, {"HSET", hash, "f0", "changed"}), "0");
  EXPECT_EQ(Cmd(*dst_, {"XACK", stream, "g1", "1-1"}), "1");  // Pending count only.
  EXPECT_EQ(Cmd(*dst_, {"PFADD", hll, "a-new-element"}), "1");
  EXPECT_EQ(Cmd(*dst_, {"DEL", set}), "1");
  EXPECT_EQ(Cmd(*dst_, {"SET", set, "now a string"}), "OK");
  EXPECT_EQ(Cmd(*dst_, {"PERSIST", with_ttl}), "1");
  EXPECT_EQ(Cmd(*dst_, {"EXPIRE", no_ttl, "600"}), "1");
  EXPECT_EQ(Cmd(*dst_, {"DEL", gone}), "1");
  EXPECT_EQ(Cmd(*dst_, {"SET", "only-in-target", "x"}), "OK");

  ASSERT_OK_AND_ASSIGN(std::vector<KeyDiff> diffs, CompareDatabases(*src_, 0, *dst_, 0));
  std::map<std::string, std::string> by_key = ByKey(diffs);
  EXPECT_EQ(by_key.size(), 9u) << ::testing::PrintToString(diffs);
  EXPECT_TRUE(absl::StartsWith(by_key[str], "value differs")) << by_key[str];
  EXPECT_TRUE(absl::StartsWith(by_key[hash], "value differs")) << by_key[hash];
  EXPECT_TRUE(absl::StartsWith(by_key[stream], "value differs")) << by_key[stream];
  EXPECT_TRUE(absl::StartsWith(by_key[hll], "value differs")) << by_key[hll];
  EXPECT_EQ(by_key[set], "type set vs string");
  EXPECT_TRUE(absl::StartsWith(by_key[with_ttl], "ttl ")) << by_key[with_ttl];
  EXPECT_TRUE(absl::EndsWith(by_key[with_ttl], " vs -1")) << by_key[with_ttl];
  EXPECT_TRUE(absl::StartsWith(by_key[no_ttl], "ttl -1 vs ")) << by_key[no_ttl];
  EXPECT_EQ(by_key[gone], "missing in target");
  EXPECT_EQ(by_key["only-in-target"], "extra in target");
  // Messages carry sizes, never values.
  EXPECT_FALSE(absl::StrContains(by_key[str], "changed")) << by_key[str];

  CompareOptions no_extra;
  no_extra.check_extra_in_target = false;
  ASSERT_OK_AND_ASSIGN(diffs, CompareDatabases(*src_, 0, *dst_, 0, no_extra));
  EXPECT_EQ(ByKey(diffs).count("only-in-target"), 0u);
  EXPECT_EQ(diffs.size(), 8u);
}

TEST_F(CompareTest, TtlWithinSlackIsEqual) {
  ASSERT_OK(LoadMixedData(*dst_, 0, kKeys, kSeed, 0.3));
  const std::string key = KeyOfKind(4, "int", true);
  const std::string pttl = Cmd(*src_, {"PTTL", key});
  int64_t ms = 0;
  ASSERT_TRUE(absl::SimpleAtoi(pttl, &ms)) << pttl;
  EXPECT_EQ(Cmd(*dst_, {"PEXPIRE", key, absl::StrCat(ms + 1000)}), "1");
  EXPECT_TRUE(SameData(*src_, 0, *dst_, 0));
  EXPECT_EQ(Cmd(*dst_, {"PEXPIRE", key, absl::StrCat(ms + 10000)}), "1");
  EXPECT_FALSE(SameData(*src_, 0, *dst_, 0));
}

TEST_F(CompareTest, ServersCompareEveryDbAndMatchFilters) {
  ASSERT_OK(LoadMixedData(*dst_, 0, kKeys, kSeed, 0.3));
  ASSERT_OK(LoadMixedData(*src_, 5, 40, /*seed=*/99, 0.0));
  ASSERT_OK_AND_ASSIGN(std::vector<KeyDiff> diffs, CompareServers(*src_, *dst_));
  ASSERT_EQ(diffs.size(), 40u);
  for (const KeyDiff& d : diffs) {
    EXPECT_EQ(d.db, 5);
    EXPECT_EQ(d.problem, "missing in target");
  }

  CompareOptions only_db0_keys;
  only_db0_keys.match = absl::StrCat("mixed:", kSeed, ":*");
  EXPECT_TRUE(SameData(*src_, *dst_, only_db0_keys));
}

}  // namespace
}  // namespace ferry::testing
