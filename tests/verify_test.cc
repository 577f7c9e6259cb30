// `ferry verify` end to end (and `ferry migrate --verify`, `ferry submit --verify-only`,
// `ferry status JOB --differences`): the real binaries between real redis-server processes.
// A clean copy verifies as equal (standalone and cluster on either side); every kind of injected
// difference is reported by key name and kind, quick mode sees what it can; a source written to
// during the check gives no false report; a killed agent's verification resumes; every
// difference is listed over pages; no value or password reaches any output; bad flags exit 2.

#include <signal.h>

#include <atomic>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/testing/compare.h"
#include "common/testing/redis_cluster.h"
#include "common/testing/redis_helpers.h"
#include "common/testing/redis_server.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/ferry_cli.h"
#include "tests/fleet.h"

namespace ferry::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Commands = std::vector<std::vector<std::string>>;

// Sends `commands` pipelined; the first error reply (or transport error) is the result.
absl::Status Exec(redis::Connection& conn, const Commands& commands) {
  for (const std::vector<std::string>& command : commands) {
    const std::vector<absl::string_view> argv(command.begin(), command.end());
    conn.Append(argv);
  }
  if (absl::Status s = conn.Flush(); !s.ok()) return s;
  absl::Status first = absl::OkStatus();
  for (const std::vector<std::string>& command : commands) {
    absl::StatusOr<redis::Reply> reply = conn.ReadReply();
    if (!reply.ok()) return reply.status();
    if (reply->is_error() && first.ok()) {
      first = absl::InternalError(
          absl::StrCat(absl::StrJoin(command, " ").substr(0, 80), ": ", reply->str()));
    }
  }
  return first;
}

// A JSON string starting at json[pos] (the opening quote), unescaped as cli/progress.cc
// JsonString escapes; `pos` moves past the closing quote.
std::string ReadJsonString(absl::string_view json, size_t& pos) {
  std::string out;
  ++pos;
  while (pos < json.size() && json[pos] != '"') {
    const char c = json[pos++];
    if (c != '\\' || pos >= json.size()) {
      out += c;
      continue;
    }
    const char e = json[pos++];
    if (e == 'n') {
      out += '\n';
    } else if (e == 't') {
      out += '\t';
    } else if (e == 'r') {
      out += '\r';
    } else if (e == 'u') {
      int value = 0;
      (void)absl::SimpleHexAtoi(json.substr(pos, 4), &value);
      out += static_cast<char>(value);
      pos += 4;
    } else {
      out += e;
    }
  }
  ++pos;
  return out;
}

// The {"key","reason"} pairs of a report's "failed_keys", in order.
std::vector<std::pair<std::string, std::string>> FailedKeys(absl::string_view json) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t pos = json.find("\"failed_keys\":[");
  if (pos == absl::string_view::npos) return out;
  while (true) {
    pos = json.find("{\"key\":", pos);
    if (pos == absl::string_view::npos) break;
    pos += 7;
    std::string key = ReadJsonString(json, pos);
    pos = json.find("\"reason\":", pos);
    if (pos == absl::string_view::npos) break;
    pos += 9;
    std::string reason = ReadJsonString(json, pos);
    out.emplace_back(std::move(key), std::move(reason));
  }
  return out;
}

int64_t Differences(const CliResult& r) {
  return r.json_int("missing") + r.json_int("extra") + r.json_int("type_differs") +
         r.json_int("value_differs") + r.json_int("ttl_differs");
}

// Every kind of key, on `conn`: strings, hashes (listpack and hashtable), lists, sets (intset
// and hashtable), sorted sets with infinite scores, streams with consumer groups, consumers and
// pending entries, HyperLogLog, keys with TTLs; `marker` goes into values.
absl::Status LoadEveryType(redis::Connection& conn, const std::string& marker = "") {
  Commands c;
  const std::string m = marker;
  c.push_back({"SET", "str:plain", "hello " + m});
  c.push_back({"SET", "str:int", "12345"});
  c.push_back({"SET", "str:bin", std::string("\0\1\2\xff\r\n", 6) + m});
  c.push_back({"SET", "str:empty", ""});
  c.push_back({"SET", "str:big", std::string(10000, 'x') + m});
  c.push_back({"SET", "ttl:str", "expiring " + m, "EX", "600"});
  c.push_back({"SET", "ttl:pstr", "p" + m, "PX", "300000"});
  c.push_back({"HSET", "hash:small", "a", "1" + m, "b", "2", "c", "3"});
  std::vector<std::string> big_hash = {"HSET", "hash:big"};
  for (int i = 0; i < 1000; ++i) {  // Above hash-max-listpack-entries (512).
    big_hash.push_back(absl::StrCat("field:", i));
    big_hash.push_back(absl::StrCat("value:", i, m));
  }
  c.push_back(big_hash);
  c.push_back({"HSET", "ttl:hash", "f", "v" + m});
  c.push_back({"PEXPIRE", "ttl:hash", "400000"});
  c.push_back({"RPUSH", "list:small", "a", "b" + m, "c", "", "e"});
  std::vector<std::string> big_list = {"RPUSH", "list:big"};
  for (int i = 0; i < 1000; ++i) big_list.push_back(absl::StrCat("element-", i, m));
  c.push_back(big_list);
  c.push_back({"SADD", "set:intset", "1", "2", "3", "-40"});
  std::vector<std::string> int_set = {"SADD", "set:bigint"};
  for (int i = 0; i < 600; ++i) int_set.push_back(std::to_string(i * 7));
  c.push_back(int_set);
  std::vector<std::string> text_set = {"SADD", "set:text"};
  for (int i = 0; i < 600; ++i) text_set.push_back(absl::StrCat("member-", i, m));
  c.push_back(text_set);
  c.push_back({"SADD", "set:small", "x", "y" + m});
  c.push_back({"ZADD", "zset:small", "-inf", "neg" + m, "1.5", "mid", "inf", "pos"});
  std::vector<std::string> big_zset = {"ZADD", "zset:big", "-inf", "bottom", "inf", "top"};
  for (int i = 0; i < 200; ++i) {
    big_zset.push_back(absl::StrCat(i * 0.25));
    big_zset.push_back(absl::StrCat("zmember-", i, m));
  }
  c.push_back(big_zset);
  c.push_back({"ZADD", "ttl:zset", "1", "one"});
  c.push_back({"EXPIRE", "ttl:zset", "900"});
  for (int i = 1; i <= 10; ++i) {
    c.push_back({"XADD", "stream:a", absl::StrCat(i, "-1"), "field", absl::StrCat("value", i, m),
                 "n", std::to_string(i)});
  }
  c.push_back({"XGROUP", "CREATE", "stream:a", "g1", "0"});
  c.push_back({"XGROUP", "CREATE", "stream:a", "g2", "$"});
  c.push_back({"XREADGROUP", "GROUP", "g1", "c1", "COUNT", "3", "STREAMS", "stream:a", ">"});
  c.push_back({"XREADGROUP", "GROUP", "g1", "c2", "COUNT", "2", "STREAMS", "stream:a", ">"});
  c.push_back({"XACK", "stream:a", "g1", "1-1"});
  c.push_back({"XGROUP", "CREATECONSUMER", "stream:a", "g2", "idle"});
  c.push_back({"XDEL", "stream:a", "7-1"});
  c.push_back({"XADD", "ttl:stream", "*", "f", "v" + m});
  c.push_back({"XGROUP", "CREATE", "ttl:stream", "g", "0"});
  c.push_back({"EXPIRE", "ttl:stream", "800"});
  c.push_back({"PFADD", "hll", "a", "b", "c"});
  return Exec(conn, c);
}

class VerifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RequireRedisServerBinary().ok()) << RequireRedisServerBinary();
  }

  static std::unique_ptr<RedisServer> Server(RedisServerOptions options = {}) {
    auto server = RedisServer::Start(std::move(options));
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? *std::move(server) : nullptr;
  }

  static RedisServerOptions Debuggable() {
    RedisServerOptions options;
    options.extra_config = {"enable-debug-command yes"};
    return options;
  }

  static redis::Connection Conn(const RedisServer& server) {
    auto conn = server.Connect();
    EXPECT_TRUE(conn.ok()) << conn.status();
    return *std::move(conn);
  }

  static CliResult Migrate(const std::string& from, const std::string& to,
                           std::vector<std::string> extra = {}, const EnvList& env = {}) {
    std::vector<std::string> args = {"migrate",    "--from", from,       "--to", to,
                                     "--progress", "none",   "--output", "json"};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunFerry(args, env);
  }

  static CliResult Verify(const std::string& from, const std::string& to, const std::string& mode,
                          std::vector<std::string> extra = {}, const EnvList& env = {},
                          const std::string& output = "json") {
    std::vector<std::string> args = {"verify", "--from",     from,   "--to",     to,    "--mode",
                                     mode,     "--progress", "none", "--output", output};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunFerry(args, env);
  }

  // An equal report: exit 0, "equal", every source key verified, no difference, none failed.
  static void ExpectEqual(const CliResult& r, int64_t source_keys, const std::string& what) {
    SCOPED_TRACE(what);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(JsonScalar(r.json_line(), "kind"), "verify") << r.output;
    EXPECT_EQ(JsonScalar(r.json_line(), "state"), "equal") << r.output;
    // SCAN may return a key twice: each look counts.
    EXPECT_GE(r.json_int("verified"), source_keys) << r.output;
    EXPECT_LE(r.json_int("verified"), 2 * source_keys) << r.output;
    EXPECT_EQ(Differences(r), 0) << r.output;
    EXPECT_EQ(r.json_int("failed"), 0) << r.output;
    EXPECT_TRUE(FailedKeys(r.json_line()).empty()) << r.output;
  }

  // `r`'s failed_keys are exactly the keys of `expected`, each once, with a reason that starts
  // with its value.
  static void ExpectDifferences(const CliResult& r,
                                const std::map<std::string, std::string>& expected) {
    const auto failed = FailedKeys(r.json_line());
    std::map<std::string, std::string> got;
    for (const auto& [key, reason] : failed) {
      EXPECT_TRUE(got.emplace(key, reason).second) << "reported twice: " << key;
    }
    for (const auto& [key, prefix] : expected) {
      auto it = got.find(key);
      if (it == got.end()) {
        ADD_FAILURE() << "not reported: " << key << " (expected \"" << prefix << "...\")\n"
                      << r.output;
        continue;
      }
      EXPECT_TRUE(absl::StartsWith(it->second, prefix))
          << key << ": \"" << it->second << "\", expected \"" << prefix << "...\"";
    }
    for (const auto& [key, reason] : got) {
      EXPECT_TRUE(expected.count(key)) << "reported but equal: " << key << ": " << reason;
    }
  }
};

// ---- 1. A clean copy verifies as equal.

TEST_F(VerifyTest, CleanCopyIsEqualStandaloneToStandalone) {
  auto source = Server();
  auto target = Server();
  ASSERT_TRUE(source && target);
  redis::Connection conn = Conn(*source);
  absl::Status loaded = LoadEveryType(conn);
  ASSERT_TRUE(loaded.ok()) << loaded;
  ASSERT_TRUE(LoadMixedData(conn, 0, 3000, /*seed=*/21, /*ttl_fraction=*/0.3).ok());
  const int64_t keys = DbSize(*source);
  ASSERT_GT(keys, 3000);
  // The big encodings are there, not only the compact ones.
  for (const auto& [key, encoding] :
       std::vector<std::pair<std::string, std::string>>{{"hash:big", "hashtable"},
                                                        {"hash:small", "listpack"},
                                                        {"set:text", "hashtable"},
                                                        {"set:bigint", "hashtable"},
                                                        {"set:intset", "intset"},
                                                        {"zset:big", "skiplist"},
                                                        {"list:big", "quicklist"},
                                                        {"stream:a", "stream"}}) {
    auto reply = conn.Command({"OBJECT", "ENCODING", key});
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(reply->str(), encoding) << key;
  }

  // ferry migrate --verify --verify-mode quick: the copy, then its verification.
  CliResult copy = Migrate(source->uri(), target->uri(), {"--verify", "--verify-mode", "quick"});
  ExpectEqual(copy, keys, "migrate --verify --verify-mode quick");
  EXPECT_THAT(copy.output, HasSubstr("\"kind\":\"copy\"")) << copy.output;
  redis::Connection dst = Conn(*target);
  ASSERT_TRUE(SameData(conn, dst));

  ExpectEqual(Verify(source->uri(), target->uri(), "full"), keys, "verify --mode full");
  ExpectEqual(Verify(source->uri(), target->uri(), "quick"), keys, "verify --mode quick");
  // The text report says the same.
  CliResult text = Verify(source->uri(), target->uri(), "full", {}, {}, "text");
  EXPECT_EQ(text.exit_code, 0) << text.output;
  EXPECT_THAT(text.output, HasSubstr("verify: equal")) << text.output;
  EXPECT_THAT(text.output, HasSubstr(" 0 differences")) << text.output;
}

TEST_F(VerifyTest, CleanCopyIsEqualBetweenClusterAndStandalone) {
  auto source = Server();
  auto copy_back = Server();
  ASSERT_TRUE(source && copy_back);
  absl::StatusOr<std::unique_ptr<RedisCluster>> started = RedisCluster::Start(3, 0);
  ASSERT_TRUE(started.ok()) << started.status();
  std::unique_ptr<RedisCluster> cluster = *std::move(started);
  redis::Connection conn = Conn(*source);
  absl::Status loaded = LoadEveryType(conn);
  ASSERT_TRUE(loaded.ok()) << loaded;
  ASSERT_TRUE(LoadMixedData(conn, 0, 3000, /*seed=*/22, /*ttl_fraction=*/0.3).ok());
  const int64_t keys = DbSize(*source);

  // Standalone -> cluster of three.
  CliResult to_cluster = Migrate(source->uri(), cluster->uri());
  ASSERT_EQ(to_cluster.exit_code, 0) << to_cluster.output;
  int64_t cluster_keys = 0;
  for (int i = 0; i < 3; ++i) cluster_keys += DbSize(cluster->node(i));
  ASSERT_EQ(cluster_keys, keys);
  ExpectEqual(Verify(source->uri(), cluster->uri(), "full"), keys, "standalone->cluster full");
  ExpectEqual(Verify(source->uri(), cluster->uri(), "quick"), keys, "standalone->cluster quick");

  // Cluster -> standalone.
  CliResult from_cluster = Migrate(cluster->uri(), copy_back->uri());
  ASSERT_EQ(from_cluster.exit_code, 0) << from_cluster.output;
  ASSERT_EQ(DbSize(*copy_back), keys);
  ExpectEqual(Verify(cluster->uri(), copy_back->uri(), "full"), keys, "cluster->standalone full");
  ExpectEqual(Verify(cluster->uri(), copy_back->uri(), "quick"), keys, "cluster->standalone quick");
}

// ---- 2. Each kind of injected difference, by key name and kind.

// Source keys for one difference each; on the target after the copy: `InjectDifferences`.
absl::Status LoadDifferenceKeys(redis::Connection& source, const std::string& m = "") {
  return Exec(source, {
                          {"SET", "d:string", "abcdef" + m},
                          {"HSET", "d:hash", "f1", "v1" + m, "f2", "v2"},
                          {"RPUSH", "d:list", "a" + m, "b", "c"},
                          {"SADD", "d:set", "m1" + m, "m2", "m3"},
                          {"ZADD", "d:zset", "1", "a" + m, "2", "b"},
                          {"XADD", "d:stream", "1-1", "f", "v" + m},
                          {"XADD", "d:stream", "2-1", "f", "v"},
                          {"XADD", "d:group", "1-1", "f", "v" + m},
                          {"XADD", "d:group", "2-1", "f", "v"},
                          {"XGROUP", "CREATE", "d:group", "g", "0"},
                          {"SET", "d:missing", "here" + m},
                          {"SET", "d:type", "a string" + m},
                          {"SET", "d:ttl-added", "persistent" + m},
                          {"SET", "d:ttl-removed", "expiring" + m, "EX", "1000"},
                          {"SET", "d:ttl-longer", "expiring" + m, "EX", "1000"},
                      });
}

absl::Status InjectDifferences(redis::Connection& target, const std::string& m = "") {
  return Exec(target, {
                          {"SET", "d:string", "abcxef" + m},  // Same length.
                          {"HSET", "d:hash", "f2", "w2"},
                          {"LSET", "d:list", "1", "x"},
                          {"SREM", "d:set", "m2"},
                          {"SADD", "d:set", "m9"},
                          {"ZADD", "d:zset", "5", "b"},
                          {"DEL", "d:stream"},
                          {"XADD", "d:stream", "1-1", "f", "v" + m},
                          {"XADD", "d:stream", "2-1", "f", "w"},
                          {"XGROUP", "SETID", "d:group", "g", "1-1"},
                          {"DEL", "d:missing"},
                          {"SET", "d:extra", "only on the target" + m},
                          {"DEL", "d:type"},
                          {"RPUSH", "d:type", "a list" + m},
                          {"EXPIRE", "d:ttl-added", "1000"},
                          {"PERSIST", "d:ttl-removed"},
                          {"EXPIRE", "d:ttl-longer", "5000"},
                      });
}

const std::map<std::string, std::string>& ValueDifferences() {
  static const auto* m = new std::map<std::string, std::string>{
      {"d:string", "value differs: "}, {"d:hash", "value differs: "},
      {"d:list", "value differs: "},   {"d:set", "value differs: "},
      {"d:zset", "value differs: "},   {"d:stream", "value differs: "},
      {"d:group", "value differs: "},
  };
  return *m;
}

const std::map<std::string, std::string>& OtherDifferences() {
  static const auto* m = new std::map<std::string, std::string>{
      {"d:missing", "missing on the target"}, {"d:extra", "extra on the target"},
      {"d:type", "type differs: "},           {"d:ttl-added", "TTL differs: "},
      {"d:ttl-removed", "TTL differs: "},     {"d:ttl-longer", "TTL differs: "},
  };
  return *m;
}

TEST_F(VerifyTest, EveryInjectedDifferenceIsReportedByKeyAndKind) {
  auto source = Server();
  auto target = Server();
  ASSERT_TRUE(source && target);
  redis::Connection src = Conn(*source);
  ASSERT_TRUE(LoadEveryType(src).ok());
  ASSERT_TRUE(LoadMixedData(src, 0, 2000, /*seed=*/23, /*ttl_fraction=*/0.2).ok());
  absl::Status loaded = LoadDifferenceKeys(src);
  ASSERT_TRUE(loaded.ok()) << loaded;
  CliResult copy = Migrate(source->uri(), target->uri());
  ASSERT_EQ(copy.exit_code, 0) << copy.output;
  redis::Connection dst = Conn(*target);
  ASSERT_TRUE(SameData(src, dst));
  absl::Status injected = InjectDifferences(dst);
  ASSERT_TRUE(injected.ok()) << injected;
  const int64_t source_keys = DbSize(*source);

  CliResult full = Verify(source->uri(), target->uri(), "full");
  EXPECT_EQ(full.exit_code, 1) << full.output;
  EXPECT_EQ(JsonScalar(full.json_line(), "state"), "different") << full.output;
  std::map<std::string, std::string> all = ValueDifferences();
  all.insert(OtherDifferences().begin(), OtherDifferences().end());
  {
    SCOPED_TRACE("full");
    ExpectDifferences(full, all);
  }
  EXPECT_EQ(full.json_int("missing"), 1) << full.output;
  EXPECT_EQ(full.json_int("extra"), 1) << full.output;
  EXPECT_EQ(full.json_int("type_differs"), 1) << full.output;
  EXPECT_EQ(full.json_int("value_differs"), 7) << full.output;
  EXPECT_EQ(full.json_int("ttl_differs"), 3) << full.output;
  EXPECT_EQ(full.json_int("failed"), 0) << full.output;
  // Every other source key is equal: the source's keys less the missing, type, value and TTL
  // ones.
  EXPECT_GE(full.json_int("verified"), source_keys - 12) << full.output;

  // The same with every key compared in pages (big-key path) rather than by DUMP.
  CliResult paged = Verify(source->uri(), target->uri(), "full", {"--big-key-bytes", "1k"});
  EXPECT_EQ(paged.exit_code, 1) << paged.output;
  {
    SCOPED_TRACE("full, --big-key-bytes 1k");
    ExpectDifferences(paged, all);
  }
  EXPECT_EQ(paged.json_int("value_differs"), 7) << paged.output;
  EXPECT_EQ(paged.json_int("failed"), 0) << paged.output;

  // Quick mode: type, TTL and length only, so the same-length edits are not seen.
  CliResult quick = Verify(source->uri(), target->uri(), "quick");
  EXPECT_EQ(quick.exit_code, 1) << quick.output;
  EXPECT_EQ(JsonScalar(quick.json_line(), "state"), "different") << quick.output;
  {
    SCOPED_TRACE("quick");
    ExpectDifferences(quick, OtherDifferences());
  }
  EXPECT_EQ(quick.json_int("missing"), 1) << quick.output;
  EXPECT_EQ(quick.json_int("extra"), 1) << quick.output;
  EXPECT_EQ(quick.json_int("type_differs"), 1) << quick.output;
  EXPECT_EQ(quick.json_int("value_differs"), 0) << quick.output;
  EXPECT_EQ(quick.json_int("ttl_differs"), 3) << quick.output;
  EXPECT_EQ(quick.json_int("failed"), 0) << quick.output;

  // The text report names each key with its kind.
  CliResult text = Verify(source->uri(), target->uri(), "full", {}, {}, "text");
  EXPECT_EQ(text.exit_code, 1) << text.output;
  EXPECT_THAT(text.output, HasSubstr("verify: different")) << text.output;
  for (const auto& [key, prefix] : all) {
    EXPECT_THAT(text.output, HasSubstr(absl::StrCat("\"", key, "\": ", prefix))) << text.output;
  }
}

// Quick mode over mostly other types than strings asks the source each key's length by the
// target's type: every length that differs, and a type changed either way, is still seen.
TEST_F(VerifyTest, QuickModeSeesLengthsAndTypesWhereFewKeysAreStrings) {
  auto source = Server();
  auto target = Server();
  ASSERT_TRUE(source && target);
  redis::Connection src = Conn(*source);
  std::vector<std::vector<std::string>> load;
  for (int i = 0; i < 3000; ++i) load.push_back({"RPUSH", absl::StrCat("q:list:", i), "a", "b"});
  load.push_back({"HSET", "q:hash", "f1", "v1", "f2", "v2"});
  load.push_back({"SADD", "q:set", "m1", "m2"});
  load.push_back({"ZADD", "q:zset", "1", "a"});
  load.push_back({"XADD", "q:stream", "1-1", "f", "v"});
  load.push_back({"SET", "q:string", "abc"});
  load.push_back({"SET", "q:was-string", "abc"});
  load.push_back({"HSET", "q:was-hash", "f", "v"});
  ASSERT_TRUE(Exec(src, load).ok());
  CliResult copy = Migrate(source->uri(), target->uri());
  ASSERT_EQ(copy.exit_code, 0) << copy.output;
  redis::Connection dst = Conn(*target);
  ASSERT_TRUE(Exec(dst, {{"RPUSH", "q:list:17", "c"},
                         {"HSET", "q:hash", "f3", "v3"},
                         {"SREM", "q:set", "m2"},
                         {"ZADD", "q:zset", "2", "b"},
                         {"XADD", "q:stream", "2-1", "f", "v"},
                         {"APPEND", "q:string", "d"},
                         {"DEL", "q:was-string", "q:was-hash"},
                         {"HSET", "q:was-string", "f", "v"},
                         {"SET", "q:was-hash", "v"}})
                  .ok());

  CliResult quick = Verify(source->uri(), target->uri(), "quick");
  EXPECT_EQ(quick.exit_code, 1) << quick.output;
  ExpectDifferences(quick, {{"q:list:17", "value differs: list of length 2 on the source, 3"},
                            {"q:hash", "value differs: hash of length 2 on the source, 3"},
                            {"q:set", "value differs: set of length 2 on the source, 1"},
                            {"q:zset", "value differs: zset of length 1 on the source, 2"},
                            {"q:stream", "value differs: stream of length 1 on the source, 2"},
                            {"q:string", "value differs: string of length 3 on the source, 4"},
                            {"q:was-string", "type differs: string on the source, hash on the"},
                            {"q:was-hash", "type differs: hash on the source, string on the"}});
  EXPECT_EQ(quick.json_int("value_differs"), 6) << quick.output;
  EXPECT_EQ(quick.json_int("type_differs"), 2) << quick.output;
  EXPECT_EQ(quick.json_int("failed"), 0) << quick.output;
  EXPECT_EQ(quick.json_int("verified"), DbSize(*source) - 8) << quick.output;
}

// ---- 3. A source written to during the verification (a dual write) gives no false report.

TEST_F(VerifyTest, DualWritesAndExpiriesDuringTheCheckAreNoDifference) {
  auto source = Server(Debuggable());
  auto target = Server(Debuggable());
  ASSERT_TRUE(source && target);
  redis::Connection src = Conn(*source), dst = Conn(*target);
  constexpr int kHot = 200;  // Hot keys of each kind (a string and a hash).
  constexpr int kExpiring = 2000;
  for (redis::Connection* conn : {&src, &dst}) {
    ASSERT_TRUE(Exec(*conn, {{"DEBUG", "POPULATE", "50000", "bulk", "20"}}).ok());
    Commands hot;
    for (int i = 0; i < kHot; ++i) {
      hot.push_back({"SET", absl::StrCat("hot:s:", i), "initial"});
      hot.push_back({"HSET", absl::StrCat("hot:h:", i), "f", "initial"});
    }
    ASSERT_TRUE(Exec(*conn, hot).ok());
  }

  for (const std::string mode : {"full", "quick"}) {
    SCOPED_TRACE(mode);
    // Keys that expire during the run (1 to 2 s from now), on both sides at the same instant
    // (as ferry's own copy sets them: PXAT), strings and hashes.
    const int64_t now_ms = absl::ToUnixMillis(absl::Now());
    Commands expiring;
    for (int i = 0; i < kExpiring; ++i) {
      const std::string key = absl::StrCat("short:", i);
      const std::string at = std::to_string(now_ms + 1000 + i % 1000);
      if (i % 2 == 0) {
        expiring.push_back({"SET", key, "v", "PXAT", at});
      } else {
        expiring.push_back({"HSET", key, "f", "v"});
        expiring.push_back({"PEXPIREAT", key, at});
      }
    }
    ASSERT_TRUE(Exec(src, expiring).ok());
    ASSERT_TRUE(Exec(dst, expiring).ok());
    ASSERT_EQ(DbSize(*source), DbSize(*target));

    // Two writers, each owning half of the hot keys (so their dual writes never interleave on
    // one key), like an application during a cutover: a batch of new values on the source,
    // then 1 to 6 ms later the same batch on the target. About a tenth of the hot keys are
    // between their two writes at any moment.
    std::atomic<bool> stop{false};
    std::atomic<int64_t> writes{0};
    std::vector<std::thread> writers;
    for (int t = 0; t < 2; ++t) {
      writers.emplace_back([&, t] {
        auto s = source->Connect();
        auto d = target->Connect();
        if (!s.ok() || !d.ok()) return;
        std::mt19937 rng(t + 1 + (mode == "quick" ? 10 : 0));
        for (int64_t n = 0; !stop; ++n) {
          Commands batch;
          for (int j = 0; j < 10; ++j) {
            const int i = 2 * static_cast<int>(rng() % (kHot / 2)) + t;
            // Another length each time, so quick mode sees the window too.
            const std::string value =
                absl::StrCat(t, ":", n, ":", j, ":", std::string(rng() % 64, 'v'));
            if (rng() % 2) {
              batch.push_back({"HSET", absl::StrCat("hot:h:", i), "f", value});
            } else {
              batch.push_back({"SET", absl::StrCat("hot:s:", i), value});
            }
          }
          if (!Exec(*s, batch).ok()) return;
          absl::SleepFor(absl::Milliseconds(1 + rng() % 6));
          if (!Exec(*d, batch).ok()) return;
          writes += batch.size();
          absl::SleepFor(absl::Milliseconds(rng() % 2));
        }
      });
    }
    const absl::Time start = absl::Now();
    CliResult r = Verify(source->uri(), target->uri(), mode, {"--rate-limit", "30000"});
    const absl::Duration took = absl::Now() - start;
    stop = true;
    for (std::thread& w : writers) w.join();
    EXPECT_GT(writes.load(), 2000) << "the writers hardly wrote";
    // The run outlasts the short TTLs, so they expired while it ran.
    EXPECT_GT(took, absl::Seconds(2)) << r.output;
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(JsonScalar(r.json_line(), "state"), "equal") << r.output;
    EXPECT_EQ(Differences(r), 0) << r.output;
    EXPECT_EQ(r.json_int("failed"), 0) << r.output;
    EXPECT_TRUE(FailedKeys(r.json_line()).empty()) << r.output;
    EXPECT_GE(r.json_int("verified"), 50000 + 2 * kHot) << r.output;
  }
}

// ---- 4 and 5: a fleet.

class VerifyFleetTest : public VerifyTest {
 protected:
  void SetUp() override {
    VerifyTest::SetUp();
    if (HasFatalFailure()) return;
    absl::Status started = fleet_.StartController();
    ASSERT_TRUE(started.ok()) << started;
  }

  static constexpr int kKeys = 300000;

  // Two servers holding the same kKeys keys, one agent, and a verification of the two submitted
  // slowly enough (--rate-limit) to be interrupted: returns once it has checked some keys, not
  // all (the forward and the reverse walk: 2 * kKeys in all), with its id in job_ and the
  // agent's index in agent_.
  void StartSlowVerification() {
    source_ = Server(Debuggable());
    target_ = Server(Debuggable());
    ASSERT_TRUE(source_ && target_);
    for (RedisServer* server : {source_.get(), target_.get()}) {
      redis::Connection conn = Conn(*server);
      ASSERT_TRUE(Exec(conn, {{"DEBUG", "POPULATE", std::to_string(kKeys), "key", "32"}}).ok());
    }
    ASSERT_EQ(DbSize(*target_), kKeys);
    ASSERT_OK_AND_ASSIGN(agent_, fleet_.StartAgent());
    ASSERT_TRUE(fleet_.WaitForAgents(1).ok()) << fleet_.AllLogs();
    SubmitResult submit = fleet_.Submit({"--verify-only", "--from", source_->uri(), "--to",
                                         target_->uri(), "--rate-limit", "50000"});
    ASSERT_EQ(submit.exit_code, 0) << submit.out << submit.err;
    job_ = submit.job_id;
    int64_t scanned = 0;
    absl::Status some = WaitFor(
        [&] {
          scanned = fleet_.Counter(job_, "scanned");
          return scanned > 60000;
        },
        absl::Seconds(60), absl::Milliseconds(100));
    ASSERT_TRUE(some.ok()) << "scanned " << scanned << "\n" << fleet_.AllLogs();
  }

  // The verification ends equal, having checked fewer keys than a start over after
  // `checked_before` would have.
  void ExpectResumedAndEqual(int64_t checked_before) {
    CliResult r = fleet_.Watch(job_);
    EXPECT_EQ(r.exit_code, 0) << r.output << "\n" << fleet_.AllLogs();
    EXPECT_EQ(JsonScalar(r.json_line(), "kind"), "verify") << r.output;
    EXPECT_EQ(JsonScalar(r.json_line(), "state"), "equal") << r.output;
    EXPECT_EQ(Differences(r), 0) << r.output;
    EXPECT_EQ(r.json_int("failed"), 0) << r.output;
    EXPECT_GE(r.json_int("verified"), kKeys) << r.output;
    EXPECT_LT(r.json_int("scanned"), 2 * kKeys + checked_before) << r.output;
  }

  Fleet fleet_;
  std::unique_ptr<RedisServer> source_, target_;
  std::string job_;
  int agent_ = -1;
};

TEST_F(VerifyFleetTest, AgentKilledMidVerifyResumes) {
  ASSERT_NO_FATAL_FAILURE(StartSlowVerification());
  fleet_.KillAgent(agent_);
  const int64_t at_kill = fleet_.Counter(job_, "scanned");
  ASSERT_LT(at_kill, 2 * kKeys) << "the verification ended before the kill";
  EXPECT_EQ(fleet_.State(job_), "JOB_STATE_RUNNING");
  ASSERT_OK_AND_ASSIGN(int second, fleet_.StartAgent());
  (void)second;
  // Resumed from the checkpoints, not started over: that would check the keys counted before
  // the kill a second time.
  ExpectResumedAndEqual(at_kill);
}

TEST_F(VerifyFleetTest, ControllerKilledMidVerifyResumes) {
  ASSERT_NO_FATAL_FAILURE(StartSlowVerification());
  fleet_.KillController();
  // The state file keeps the job, its shards and their checkpoints; the agent reconnects.
  absl::Status restarted = fleet_.StartController();
  ASSERT_TRUE(restarted.ok()) << restarted;
  ASSERT_TRUE(fleet_.WaitForAgents(1).ok()) << fleet_.AllLogs();
  const int64_t after_restart = fleet_.Counter(job_, "scanned");
  EXPECT_LT(after_restart, 2 * kKeys) << "the verification ended before the kill";
  ExpectResumedAndEqual(after_restart);
}

TEST_F(VerifyFleetTest, StatusDifferencesListsEveryDifferingKeyOverPages) {
  auto source = Server(Debuggable());
  auto target = Server(Debuggable());
  ASSERT_TRUE(source && target);
  constexpr int kKeys = 2000, kMissing = 1500;
  for (RedisServer* server : {source.get(), target.get()}) {
    redis::Connection conn = Conn(*server);
    ASSERT_TRUE(Exec(conn, {{"DEBUG", "POPULATE", std::to_string(kKeys), "k", "8"}}).ok());
  }
  std::set<std::string> missing;
  {
    redis::Connection dst = Conn(*target);
    Commands del;
    for (int i = 0; i < kMissing; ++i) {
      missing.insert(absl::StrCat("k:", i));
      del.push_back({"DEL", absl::StrCat("k:", i)});
    }
    ASSERT_TRUE(Exec(dst, del).ok());
  }
  ASSERT_EQ(DbSize(*target), kKeys - kMissing);
  ASSERT_TRUE(fleet_.StartAgents(1).ok()) << fleet_.AllLogs();
  SubmitResult submit =
      fleet_.Submit({"--verify-only", "--from", source->uri(), "--to", target->uri()});
  ASSERT_EQ(submit.exit_code, 0) << submit.out << submit.err;
  const std::string job = submit.job_id;
  CliResult watch = fleet_.Watch(job);
  EXPECT_EQ(watch.exit_code, 1) << watch.output;
  EXPECT_EQ(JsonScalar(watch.json_line(), "state"), "different") << watch.output;
  EXPECT_EQ(watch.json_int("missing"), kMissing) << watch.output;

  // JSON: every key (base64, a bytes field), over two pages of 1000.
  CliResult json = fleet_.Ferry("status", {job, "--differences", "--output", "json"});
  ASSERT_EQ(json.exit_code, 0) << json.output;
  const size_t list = json.output.find("\"differences\":{");
  ASSERT_NE(list, std::string::npos) << json.output.substr(0, 2000);
  const std::string differences = json.output.substr(list);
  EXPECT_EQ(JsonScalar(differences, "total"), std::to_string(kMissing));
  std::set<std::string> listed;
  int entries = 0;
  for (size_t pos = 0; (pos = differences.find("{\"key\":\"", pos)) != std::string::npos;) {
    pos += 8;
    const size_t end = differences.find('"', pos);
    std::string key;
    EXPECT_TRUE(absl::Base64Unescape(differences.substr(pos, end - pos), &key));
    listed.insert(key);
    ++entries;
    const size_t reason = differences.find("\"reason\":\"", end);
    ASSERT_NE(reason, std::string::npos);
    EXPECT_EQ(differences.substr(reason + 10, 21), "missing on the target");
    pos = end;
  }
  EXPECT_EQ(entries, kMissing);
  EXPECT_EQ(listed, missing);

  // Text: one line per key.
  CliResult text = fleet_.Ferry("status", {job, "--differences"});
  ASSERT_EQ(text.exit_code, 0) << text.output;
  EXPECT_THAT(text.output, HasSubstr(absl::StrCat("differing keys: ", kMissing)));
  int lines = 0;
  for (absl::string_view line : absl::StrSplit(text.output, '\n')) {
    if (absl::StartsWith(line, "    \"k:") && absl::EndsWith(line, ": missing on the target")) {
      ++lines;
    }
  }
  EXPECT_EQ(lines, kMissing);
}

// ---- 6. Never a value or a password in any output.

TEST_F(VerifyTest, NoValueOrPasswordInAnyOutput) {
  const std::string kSourcePassword = "src-Pw-9f8e7d-XYZZY";
  const std::string kTargetPassword = "dst-Pw-1a2b3c-PLUGH";
  const std::string kMarker = "SECRET-VALUE-123";
  RedisServerOptions source_options, target_options;
  source_options.requirepass = kSourcePassword;
  target_options.requirepass = kTargetPassword;
  auto source = Server(source_options);
  auto target = Server(target_options);
  ASSERT_TRUE(source && target);
  redis::Connection src = Conn(*source);
  ASSERT_TRUE(LoadEveryType(src, kMarker).ok());
  ASSERT_TRUE(LoadDifferenceKeys(src, kMarker).ok());
  const EnvList env = {{"FERRY_FROM_PASSWORD", kSourcePassword},
                       {"FERRY_TO_PASSWORD", kTargetPassword}};
  CliResult copy = Migrate(source->uri(), target->uri(), {}, env);
  ASSERT_EQ(copy.exit_code, 0) << copy.output;
  redis::Connection dst = Conn(*target);
  ASSERT_TRUE(InjectDifferences(dst, kMarker).ok());
  // Some bigger values too, compared in pages rather than by DUMP.
  ASSERT_TRUE(Exec(src, {{"SET", "big:str", std::string(200000, 'a') + kMarker}}).ok());
  ASSERT_TRUE(Exec(dst, {{"SET", "big:str", std::string(200000, 'b') + kMarker}}).ok());

  for (const std::string mode : {"full", "quick"}) {
    for (const std::string output : {"json", "text"}) {
      SCOPED_TRACE(absl::StrCat(mode, " ", output));
      CliResult r =
          Verify(source->uri(), target->uri(), mode, {"--big-key-bytes", "64k"}, env, output);
      EXPECT_EQ(r.exit_code, 1) << r.output;
      EXPECT_THAT(r.output, HasSubstr("d:missing")) << r.output;
      EXPECT_THAT(r.output, HasSubstr("d:ttl-longer")) << r.output;
      if (mode == "full") {
        EXPECT_THAT(r.output, HasSubstr("d:string")) << r.output;
        EXPECT_THAT(r.output, HasSubstr("big:str")) << r.output;
      }
      EXPECT_THAT(r.output, Not(HasSubstr(kMarker)));
      EXPECT_THAT(r.output, Not(HasSubstr("SECRET")));
      EXPECT_THAT(r.output, Not(HasSubstr(kSourcePassword)));
      EXPECT_THAT(r.output, Not(HasSubstr(kTargetPassword)));
    }
  }
  // A wrong password is an access error that names no password either.
  CliResult wrong = Verify(source->uri(), target->uri(), "full", {},
                           {{"FERRY_FROM_PASSWORD", "wrong-" + kSourcePassword},
                            {"FERRY_TO_PASSWORD", kTargetPassword}});
  EXPECT_EQ(wrong.exit_code, 3) << wrong.output;
  EXPECT_THAT(wrong.output, Not(HasSubstr(kSourcePassword)));
  EXPECT_THAT(wrong.output, Not(HasSubstr(kTargetPassword)));
}

// ---- 7. CLI errors.

TEST(VerifyUsageTest, BadFlagsExit2AndHelpMentionsMode) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  } cases[] = {
      {{"verify", "--from", "redis://127.0.0.1:1", "--to", "redis://127.0.0.1:2", "--mode", "deep"},
       "--mode must be full or quick"},
      {{"verify", "--from", "redis://127.0.0.1:1", "--to", "redis://127.0.0.1:2", "--on-conflict",
        "skip"},
       "unknown option --on-conflict"},
      {{"verify", "--from", "redis://127.0.0.1:1", "--to", "redis://127.0.0.1:2", "--dry-run"},
       "unknown option --dry-run"},
      {{"migrate", "--from", "redis://127.0.0.1:1", "--to", "redis://127.0.0.1:2", "--verify-only"},
       "--verify-only is for ferry submit"},
      {{"migrate", "--from", "redis://127.0.0.1:1", "--to", "redis://127.0.0.1:2", "--verify",
        "--verify-mode", "deep"},
       "--verify-mode must be full or quick"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrJoin(c.args, " "));
    CliResult r = RunFerry(c.args);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_THAT(r.output, HasSubstr(c.message)) << r.output;
  }
  // ferry submit runs one job: --verify (copy, then verify) is ferry migrate's.
  CliResult submit = RunFerry({"submit", "--verify", "--from", "redis://127.0.0.1:1", "--to",
                               "redis://127.0.0.1:2", "--controller", "127.0.0.1:1"});
  EXPECT_EQ(submit.exit_code, 2) << submit.output;
  EXPECT_THAT(submit.output, HasSubstr("--verify-only")) << submit.output;

  CliResult help = RunFerry({"verify", "--help"});
  EXPECT_EQ(help.exit_code, 0) << help.output;
  EXPECT_THAT(help.output, HasSubstr("--mode MODE"));
  EXPECT_THAT(help.output, HasSubstr("quick"));
  EXPECT_THAT(help.output, HasSubstr("--ttl-tolerance"));
  EXPECT_THAT(help.output, Not(HasSubstr("--on-conflict")));
  EXPECT_THAT(help.output, Not(HasSubstr("--verify-mode")));
}

// Each option of `ferry verify --help` is listed once.
TEST(VerifyUsageTest, HelpListsEachOptionOnce) {
  CliResult help = RunFerry({"verify", "--help"});
  ASSERT_EQ(help.exit_code, 0) << help.output;
  std::map<std::string, int> listed;
  for (absl::string_view line : absl::StrSplit(help.output, '\n')) {
    if (!absl::StartsWith(line, "  --")) continue;
    listed[std::string(line.substr(2, line.find(' ', 2) - 2))]++;
  }
  EXPECT_GT(listed.size(), 10u) << help.output;
  for (const auto& [option, times] : listed) {
    EXPECT_EQ(times, 1) << option << " is listed " << times << " times:\n" << help.output;
  }
}

}  // namespace
}  // namespace ferry::testing
