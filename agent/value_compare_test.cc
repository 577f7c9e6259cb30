// Logical comparisons (value_compare.h) against real redis-servers: equal values of every type
// compare equal whatever their insertion order, each kind of difference is found and named
// without a value byte in the detail, big values page by page, an older target through the
// RESP proxy, and keys that change type or vanish.

#include "agent/value_compare.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/redis/capabilities.h"
#include "common/redis/connection.h"
#include "common/redis/router.h"
#include "common/testing/redis_cluster.h"
#include "common/testing/redis_helpers.h"
#include "common/testing/redis_server.h"
#include "common/testing/resp_proxy.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::agent {
namespace {

namespace ft = ::ferry::testing;
using ::testing::HasSubstr;
using ::testing::Not;

using Commands = std::vector<std::vector<std::string>>;

// Every value, field and member the tests write holds this; no detail may.
constexpr absl::string_view kSecret = "SECRET";

std::string Secret(absl::string_view what, int i) { return absl::StrCat(kSecret, "-", what, i); }

// Pages small enough that every value spans several.
ValueCompareOptions SmallPages() {
  ValueCompareOptions options;
  options.page_elements = 3;
  options.chunk_bytes = 1024;
  return options;
}

void Send(redis::Connection& conn, const Commands& commands) {
  absl::StatusOr<std::vector<redis::Reply>> replies = redis::RunPipeline(conn, commands);
  ASSERT_TRUE(replies.ok()) << replies.status();
  for (size_t i = 0; i < replies->size(); ++i) {
    ASSERT_FALSE((*replies)[i].is_error()) << commands[i][0] << ": " << (*replies)[i].str();
  }
}

redis::Capabilities CapabilitiesOf(const redis::Endpoint& endpoint) {
  absl::StatusOr<redis::Connection> conn = redis::Connection::Open(endpoint);
  EXPECT_TRUE(conn.ok()) << conn.status();
  if (!conn.ok()) return redis::Capabilities::FromInfo("");
  absl::StatusOr<redis::Reply> info = conn->Command({"INFO", "server"});
  EXPECT_TRUE(info.ok()) << info.status();
  return redis::Capabilities::FromInfo(info.ok() ? info->str() : "");
}

// 600 fields (a hashtable, past hash-max-listpack-entries), in reverse order with `reversed`.
Commands LoadHash(absl::string_view key, bool reversed) {
  Commands commands;
  for (int n = 0; n < 600; ++n) {
    const int i = reversed ? 599 - n : n;
    commands.push_back({"HSET", std::string(key), Secret("field", i), Secret("value", i)});
  }
  return commands;
}

// 300 members that are not integers (a hashtable set), in reverse order with `reversed`.
Commands LoadSet(absl::string_view key, bool reversed) {
  Commands commands;
  for (int n = 0; n < 300; ++n) {
    commands.push_back({"SADD", std::string(key), Secret("member", reversed ? 299 - n : n)});
  }
  return commands;
}

// A skiplist zset with infinite, tiny and fractional scores.
Commands LoadZset(absl::string_view key) {
  std::vector<std::string> zadd = {"ZADD", std::string(key),   "inf",   Secret("plus", 0),
                                   "-inf", Secret("minus", 0), "1e-20", Secret("tiny", 0),
                                   "0.1",  Secret("tenth", 0)};
  for (int i = 0; i < 200; ++i) {
    zadd.insert(zadd.end(), {absl::StrCat(i * 3.3), Secret("member", i)});
  }
  return {zadd};
}

Commands LoadList(absl::string_view key) {
  std::vector<std::string> rpush = {"RPUSH", std::string(key)};
  for (int i = 0; i < 50; ++i) rpush.push_back(Secret("element", i));
  return {rpush};
}

// 20 entries (7-1 deleted, entry 8-1's value changed with `change_entry`), a last id past them,
// two groups; g1: alice owns 1-1..3-1, bob 4-1 and 5-1, carol nothing; g2: dave owns 1-1..4-1
// but 2-1.
Commands LoadStream(absl::string_view key, bool change_entry = false) {
  const std::string k(key);
  Commands commands;
  for (int i = 1; i <= 20; ++i) {
    const std::string value = change_entry && i == 8 ? Secret("changed", i) : Secret("value", i);
    commands.push_back({"XADD", k, absl::StrCat(i, "-1"), "f", value, "g", Secret("other", i)});
  }
  const Commands groups = {{"XGROUP", "CREATE", k, "g1", "0"},
                           {"XGROUP", "CREATE", k, "g2", "0"},
                           {"XREADGROUP", "GROUP", "g1", "alice", "COUNT", "3", "STREAMS", k, ">"},
                           {"XREADGROUP", "GROUP", "g1", "bob", "COUNT", "2", "STREAMS", k, ">"},
                           {"XGROUP", "CREATECONSUMER", k, "g1", "carol"},
                           {"XREADGROUP", "GROUP", "g2", "dave", "COUNT", "4", "STREAMS", k, ">"},
                           {"XACK", k, "g2", "2-1"},
                           {"XDEL", k, "7-1"},
                           {"XSETID", k, "100-5"}};
  commands.insert(commands.end(), groups.begin(), groups.end());
  return commands;
}

class ValueCompareTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(ft::RequireRedisServerBinary());
    source_server_ = ft::StartServer();
    target_server_ = ft::StartServer();
    ASSERT_NE(source_server_, nullptr);
    ASSERT_NE(target_server_, nullptr);
    source_.emplace(ft::Connect(*source_server_));
    target_.emplace(ft::Connect(*target_server_));
    OpenRouters(source_server_->endpoint(), target_server_->endpoint());
  }

  // The routers CompareValue uses, and what each side says it can do.
  void OpenRouters(const redis::Endpoint& source, const redis::Endpoint& target) {
    ASSERT_OK_AND_ASSIGN(source_router_, redis::Router::Open(source, 0, {}));
    ASSERT_OK_AND_ASSIGN(target_router_, redis::Router::Open(target, 0, {}));
    source_caps_.emplace(CapabilitiesOf(source));
    target_caps_.emplace(CapabilitiesOf(target));
  }

  void OnBoth(const Commands& commands) {
    Send(*source_, commands);
    Send(*target_, commands);
  }

  std::string Encoding(absl::string_view key) {
    absl::StatusOr<redis::Reply> reply = target_->Command({"OBJECT", "ENCODING", key});
    EXPECT_TRUE(reply.ok()) << reply.status();
    return reply.ok() ? std::string(reply->str()) : "";
  }

  ValueDiff Compare(absl::string_view key, absl::string_view type,
                    const ValueCompareOptions& options = SmallPages()) {
    absl::StatusOr<ValueDiff> diff =
        CompareValue({source_router_.get(), &*source_caps_}, {target_router_.get(), &*target_caps_},
                     key, type, options);
    EXPECT_TRUE(diff.ok()) << diff.status();
    if (!diff.ok()) return ValueDiff{false, std::string(diff.status().message())};
    EXPECT_THAT(diff->detail, Not(HasSubstr(kSecret)));
    return *diff;
  }

  void ExpectEqual(absl::string_view key, absl::string_view type,
                   const ValueCompareOptions& options = SmallPages()) {
    const ValueDiff diff = Compare(key, type, options);
    EXPECT_TRUE(diff.equal) << key << ": " << diff.detail;
    EXPECT_EQ(diff.detail, "") << key;
  }

  // Differs, as `detail` says, without a value byte in it.
  void ExpectDiffers(absl::string_view key, absl::string_view type, absl::string_view detail,
                     const ValueCompareOptions& options = SmallPages()) {
    const ValueDiff diff = Compare(key, type, options);
    EXPECT_FALSE(diff.equal) << key;
    EXPECT_FALSE(diff.type_changed) << key;
    EXPECT_EQ(diff.detail, detail) << key;
  }

  std::unique_ptr<ft::RedisServer> source_server_;
  std::unique_ptr<ft::RedisServer> target_server_;
  std::optional<redis::Connection> source_;  // For loading data.
  std::optional<redis::Connection> target_;
  std::unique_ptr<redis::Router> source_router_;
  std::unique_ptr<redis::Router> target_router_;
  std::optional<redis::Capabilities> source_caps_;
  std::optional<redis::Capabilities> target_caps_;
};

TEST_F(ValueCompareTest, EqualValuesOfEveryTypeCompareEqual) {
  Send(*source_, LoadHash("hash", /*reversed=*/false));
  Send(*target_, LoadHash("hash", /*reversed=*/true));
  Send(*source_, LoadSet("set", /*reversed=*/false));
  Send(*target_, LoadSet("set", /*reversed=*/true));
  OnBoth(LoadZset("zset"));
  OnBoth(LoadList("list"));
  OnBoth(LoadStream("stream"));
  std::string long_string;
  for (int i = 0; long_string.size() < 5000; ++i) long_string += Secret("", i);
  OnBoth({{"SET", "string", long_string}, {"SET", "empty", ""}});
  // Elements inserted in other orders: what DUMP payloads would disagree on.
  ASSERT_EQ(Encoding("hash"), "hashtable");
  ASSERT_EQ(Encoding("set"), "hashtable");

  for (const ValueCompareOptions& options : {SmallPages(), ValueCompareOptions{}}) {
    ExpectEqual("hash", "hash", options);
    ExpectEqual("set", "set", options);
    ExpectEqual("zset", "zset", options);
    ExpectEqual("list", "list", options);
    ExpectEqual("stream", "stream", options);
    ExpectEqual("string", "string", options);
    ExpectEqual("empty", "string", options);
  }
}

TEST_F(ValueCompareTest, HashDifferences) {
  for (const char* key : {"changed", "swapped", "shorter"}) OnBoth(LoadHash(key, false));
  Send(*target_, {{"HSET", "changed", Secret("field", 150), Secret("other", 150)},
                  {"HDEL", "swapped", Secret("field", 10)},
                  {"HSET", "swapped", Secret("field", 1000), Secret("value", 10)},
                  {"HDEL", "shorter", Secret("field", 10)}});
  ExpectDiffers("changed", "hash", "hash: a field's value differs");
  ExpectDiffers("swapped", "hash", "hash: a field is missing on the target");
  ExpectDiffers("shorter", "hash", "hash: 600 fields on the source, 599 on the target");
}

TEST_F(ValueCompareTest, SetDifferences) {
  for (const char* key : {"extra", "swapped"}) OnBoth(LoadSet(key, false));
  Send(*target_, {{"SADD", "extra", Secret("member", 1000)},
                  {"SREM", "swapped", Secret("member", 20)},
                  {"SADD", "swapped", Secret("member", 1000)}});
  ExpectDiffers("extra", "set", "set: 300 members on the source, 301 on the target");
  ExpectDiffers("swapped", "set", "set: a member is missing on the target");
}

TEST_F(ValueCompareTest, ZsetDifferences) {
  for (const char* key : {"score", "infinite", "swapped", "extra"}) OnBoth(LoadZset(key));
  Send(*target_, {{"ZADD", "score", "33.0001", Secret("member", 10)},
                  {"ZADD", "infinite", "-inf", Secret("plus", 0)},
                  {"ZREM", "swapped", Secret("member", 5)},
                  {"ZADD", "swapped", "5", Secret("member", 1000)},
                  {"ZADD", "extra", "5", Secret("member", 1000)}});
  ExpectDiffers("score", "zset", "zset: a member's score differs");
  ExpectDiffers("infinite", "zset", "zset: a member's score differs");
  ExpectDiffers("swapped", "zset", "zset: a member is missing on the target");
  ExpectDiffers("extra", "zset", "zset: 204 members on the source, 205 on the target");
}

TEST_F(ValueCompareTest, ListDifferences) {
  for (const char* key : {"changed", "swapped", "longer"}) OnBoth(LoadList(key));
  Send(*target_, {{"LSET", "changed", "5", Secret("other", 5)},
                  {"LSET", "swapped", "20", Secret("element", 21)},
                  {"LSET", "swapped", "21", Secret("element", 20)},
                  {"RPUSH", "longer", Secret("element", 50)}});
  ExpectDiffers("changed", "list", "list: element 5 differs");
  ExpectDiffers("swapped", "list", "list: element 20 differs");
  ExpectDiffers("longer", "list", "list: 50 elements on the source, 51 on the target");
}

TEST_F(ValueCompareTest, StringDifferences) {
  const std::string value(5000, 'S');
  OnBoth({{"SET", "past-first-chunk", value}, {"SET", "longer", value}});
  Send(*target_, {{"SETRANGE", "past-first-chunk", "2000", "x"}, {"APPEND", "longer", "x"}});
  ExpectDiffers("past-first-chunk", "string", "string: bytes differ at offset 1024..2047");
  ExpectDiffers("longer", "string", "string: length 5000 vs 5001");
  // One window over the whole string with the default chunk.
  ExpectDiffers("past-first-chunk", "string", "string: bytes differ at offset 0..4999", {});
}

TEST_F(ValueCompareTest, StreamDifferences) {
  Send(*source_, LoadStream("entry"));
  Send(*target_, LoadStream("entry", /*change_entry=*/true));
  const std::vector<std::string> keys = {"last-id",  "delivered", "owner",  "deliveries",
                                         "consumer", "consumers", "pending"};
  for (const std::string& key : keys) OnBoth(LoadStream(key));
  Send(*target_, {{"XSETID", "last-id", "200-0"},
                  {"XGROUP", "SETID", "delivered", "g2", "3-1"},
                  // Owners swapped, each consumer's count kept; JUSTID keeps delivery counts.
                  {"XCLAIM", "owner", "g1", "bob", "0", "1-1", "JUSTID"},
                  {"XCLAIM", "owner", "g1", "alice", "0", "4-1", "JUSTID"},
                  {"XCLAIM", "deliveries", "g1", "alice", "0", "2-1"},
                  {"XGROUP", "DELCONSUMER", "consumer", "g1", "carol"},
                  {"XGROUP", "CREATECONSUMER", "consumer", "g1", "erin"},
                  {"XGROUP", "DELCONSUMER", "consumers", "g1", "carol"},
                  {"XACK", "pending", "g2", "3-1"}});
  ExpectDiffers("entry", "stream", "stream: entry 8-1 differs");
  ExpectDiffers("last-id", "stream", "stream: last id 100-5 vs 200-0");
  ExpectDiffers("delivered", "stream", "stream: group g2 last-delivered-id differs (4-1 vs 3-1)");
  ExpectDiffers("owner", "stream",
                "stream: group g1 pending entry 1-1 has another owner on the target");
  ExpectDiffers("deliveries", "stream",
                "stream: group g1 pending entry 2-1 has delivery count 1 on the source, 2 on "
                "the target");
  ExpectDiffers("consumer", "stream", "stream: group g1 consumer carol is missing on the target");
  ExpectDiffers("consumers", "stream",
                "stream: group g1 has 3 consumers on the source, 2 on the target");
  ExpectDiffers("pending", "stream",
                "stream: group g2 has 3 pending entries on the source, 2 on the target");
}

TEST_F(ValueCompareTest, BigHashInPages) {
  Commands commands;
  for (int first = 0; first < 50000; first += 500) {
    std::vector<std::string> hset = {"HSET", "big"};
    for (int i = first; i < first + 500; ++i) {
      hset.insert(hset.end(), {Secret("field", i), Secret("value", i)});
    }
    commands.push_back(std::move(hset));
  }
  OnBoth(commands);
  ExpectEqual("big", "hash", {});
  Send(*target_, {{"HSET", "big", Secret("field", 43210), Secret("changed", 43210)}});
  ExpectDiffers("big", "hash", "hash: a field's value differs", {});
}

// A target that answers as Redis 6.0: no SMISMEMBER or ZMSCORE (SISMEMBER and ZSCORE instead),
// no exclusive ranges, no stream counters.
TEST_F(ValueCompareTest, OlderTargetFallsBackToOneLookupPerMember) {
  OnBoth(LoadSet("set", false));
  OnBoth(LoadZset("zset"));
  OnBoth(LoadStream("stream"));
  std::unique_ptr<ft::RespProxy> proxy =
      ft::ProxyFor(*target_server_, ft::PretendServer(redis::Engine::kRedis, {6, 0}));
  ASSERT_NE(proxy, nullptr);
  ASSERT_OK_AND_ASSIGN(redis::Endpoint endpoint, redis::ParseEndpointUri(ft::ProxyUri(*proxy)));
  OpenRouters(source_server_->endpoint(), endpoint);
  ASSERT_FALSE(target_caps_->smismember());
  ASSERT_FALSE(target_caps_->exclusive_ranges());

  ExpectEqual("set", "set");
  ExpectEqual("zset", "zset");
  ExpectEqual("stream", "stream");
  EXPECT_GT(proxy->commands_seen("SISMEMBER"), 0u);
  EXPECT_GT(proxy->commands_seen("ZSCORE"), 0u);
  EXPECT_EQ(proxy->commands_seen("SMISMEMBER"), 0u);
  EXPECT_EQ(proxy->commands_seen("ZMSCORE"), 0u);

  Send(*target_, {{"SREM", "set", Secret("member", 20)},
                  {"SADD", "set", Secret("member", 1000)},
                  {"ZADD", "zset", "33.0001", Secret("member", 10)},
                  {"XCLAIM", "stream", "g1", "alice", "0", "5-1"}});
  ExpectDiffers("set", "set", "set: a member is missing on the target");
  ExpectDiffers("zset", "zset", "zset: a member's score differs");
  ExpectDiffers("stream", "stream",
                "stream: group g1 consumer alice has 3 pending entries on the source, 4 on the "
                "target");
}

// Hash field TTLs are read only where both sides have them (Redis 7.4 through the proxy, which
// answers HPEXPIRETIME as 7.4 would for fields without TTLs).
TEST_F(ValueCompareTest, FieldTtlsWhereBothSidesHaveThem) {
  OnBoth(LoadHash("hash", false));
  std::unique_ptr<ft::RespProxy> source =
      ft::ProxyFor(*source_server_, ft::PretendServer(redis::Engine::kRedis, {7, 4}));
  std::unique_ptr<ft::RespProxy> target =
      ft::ProxyFor(*target_server_, ft::PretendServer(redis::Engine::kRedis, {7, 4}));
  ASSERT_NE(source, nullptr);
  ASSERT_NE(target, nullptr);
  ASSERT_OK_AND_ASSIGN(redis::Endpoint source_endpoint,
                       redis::ParseEndpointUri(ft::ProxyUri(*source)));
  ASSERT_OK_AND_ASSIGN(redis::Endpoint target_endpoint,
                       redis::ParseEndpointUri(ft::ProxyUri(*target)));
  OpenRouters(source_endpoint, target_endpoint);
  ExpectEqual("hash", "hash");
  EXPECT_GT(source->commands_seen("HPEXPIRETIME"), 0u);
  EXPECT_GT(target->commands_seen("HPEXPIRETIME"), 0u);

  // A 7.0 target has none: nothing to compare, nothing sent.
  const uint64_t sent = source->commands_seen("HPEXPIRETIME");
  OpenRouters(source_endpoint, target_server_->endpoint());
  ExpectEqual("hash", "hash");
  EXPECT_EQ(source->commands_seen("HPEXPIRETIME"), sent);
}

// Every command reaches the node of its key, XINFO CONSUMERS (key third) included.
TEST_F(ValueCompareTest, ClusterTarget) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ft::RedisCluster> cluster, ft::RedisCluster::Start(3, 0));
  OpenRouters(source_server_->endpoint(), cluster->endpoint());
  ASSERT_TRUE(target_router_->cluster());
  const std::vector<std::pair<std::string, std::string>> keys = {
      {"hash", "hash"}, {"set", "set"},       {"zset", "zset"},
      {"list", "list"}, {"stream", "stream"}, {"string", "string"}};
  // The stream's pending entries come from XCLAIM ... FORCE: the router cannot route
  // XREADGROUP (its key follows STREAMS).
  const Commands stream = {
      {"XADD", "stream", "1-1", "f", Secret("value", 1)},
      {"XADD", "stream", "2-1", "f", Secret("value", 2)},
      {"XGROUP", "CREATE", "stream", "g1", "2-1"},
      {"XCLAIM", "stream", "g1", "alice", "0", "1-1", "2-1", "FORCE", "JUSTID"},
      {"XGROUP", "CREATECONSUMER", "stream", "g1", "bob"},
      {"XGROUP", "CREATECONSUMER", "stream", "g1", "carol"}};
  Commands commands = LoadHash("hash", false);
  for (const Commands& more : {LoadSet("set", false), LoadZset("zset"), LoadList("list"), stream,
                               Commands{{"SET", "string", Secret("", 0)}}}) {
    commands.insert(commands.end(), more.begin(), more.end());
  }
  Send(*source_, commands);
  for (const std::vector<std::string>& command : commands) {
    target_router_->Add(std::vector<absl::string_view>(command.begin(), command.end()));
  }
  ASSERT_OK_AND_ASSIGN(std::vector<redis::Reply> replies, target_router_->Execute());
  for (const redis::Reply& reply : replies) ASSERT_FALSE(reply.is_error()) << reply.str();
  for (const auto& [key, type] : keys) ExpectEqual(key, type);

  target_router_->Add({"XGROUP", "DELCONSUMER", "stream", "g1", "carol"});
  ASSERT_OK(target_router_->Execute().status());
  ExpectDiffers("stream", "stream",
                "stream: group g1 has 3 consumers on the source, 2 on the target");
}

TEST_F(ValueCompareTest, KeysThatChangeTypeOrVanish) {
  OnBoth(LoadHash("gone", false));
  OnBoth(LoadStream("gone-stream"));
  Send(*source_, LoadHash("retyped", false));
  Send(*target_, {{"DEL", "gone"}, {"DEL", "gone-stream"}, {"SET", "retyped", "x"}});
  const std::vector<std::pair<std::string, std::string>> keys = {
      {"gone", "hash"}, {"gone-stream", "stream"}, {"retyped", "hash"}};
  for (const auto& [key, type] : keys) {
    const ValueDiff diff = Compare(key, type);
    EXPECT_FALSE(diff.equal) << key;
    EXPECT_TRUE(diff.type_changed) << key;
  }
}

}  // namespace
}  // namespace ferry::agent
