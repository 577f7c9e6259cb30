// Type-by-type copies (value_copy.h) against real redis-servers: every type copied page by page
// and compared key by key, the batch helpers, keys that change while they are copied, TTLs,
// conflict policies, older servers (through the RESP proxy), a cluster target, and big keys
// copied without one slow command on either side.

#include "agent/value_copy.h"

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/expiry.h"
#include "common/redis/capabilities.h"
#include "common/redis/connection.h"
#include "common/redis/router.h"
#include "common/redis/slot.h"
#include "common/testing/compare.h"
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
using Outcome = KeyCopy::Outcome;
using ::testing::HasSubstr;

// Pages small enough that every value of LoadMixedData and LoadSpecials spans several.
ValueCopyOptions SmallPages() {
  ValueCopyOptions options;
  options.chunk_bytes = 100;
  options.page_elements = 7;
  options.max_per_command = 3;
  return options;
}

void Send(redis::Connection& conn, const std::vector<std::vector<std::string>>& commands) {
  absl::StatusOr<std::vector<redis::Reply>> replies = redis::RunPipeline(conn, commands);
  ASSERT_TRUE(replies.ok()) << replies.status();
  for (size_t i = 0; i < replies->size(); ++i) {
    ASSERT_FALSE((*replies)[i].is_error()) << commands[i][0] << ": " << (*replies)[i].str();
  }
}

int64_t Integer(redis::Connection& conn, std::initializer_list<absl::string_view> argv) {
  absl::StatusOr<redis::Reply> reply = conn.Command(argv);
  EXPECT_TRUE(reply.ok()) << reply.status();
  return reply.ok() ? reply->integer() : -3;
}

// Values LoadMixedData does not have: exact and infinite scores, binary and empty strings, and
// streams with everything a stream holds besides entries.
void LoadSpecials(redis::Connection& conn) {
  std::vector<std::string> zadd = {"ZADD",
                                   "zset:scores",
                                   "inf",
                                   "plus",
                                   "-inf",
                                   "minus",
                                   "1.2345678901234567",
                                   "digits",
                                   "1e-20",
                                   "tiny",
                                   "123456789012345678",
                                   "huge",
                                   "0.1",
                                   "tenth"};
  for (int i = 0; i < 200; ++i) zadd.insert(zadd.end(), {absl::StrCat(i * 3.3), absl::StrCat(i)});
  std::vector<std::string> list = {"RPUSH", "list:long"};
  for (int i = 0; i < 300; ++i) list.push_back(std::string(i % 5, static_cast<char>(i)));
  Send(conn, {zadd,
              {"ZADD", "zset:small", "inf", "a", "-inf", "b", "-0.30000000000000004", "c"},
              {"SET", "string:binary", std::string("a\0b\r\n\xff\xfe", 7)},
              {"SET", "string:empty", ""},
              {"SET", "string:long", std::string(1000, 'q') + "end"},
              list,
              {"PEXPIRE", "list:long", "100000"}});
  // stream:full: deleted entries, a last id moved past the last entry, two groups, a consumer
  // without pending entries and pending entries delivered more than once.
  std::vector<std::vector<std::string>> stream;
  for (int i = 1; i <= 30; ++i) {
    stream.push_back({"XADD", "stream:full", absl::StrCat(i, "-1"), "f", absl::StrCat(i), "g",
                      std::string(i, 'x')});
  }
  stream.insert(
      stream.end(),
      {{"XDEL", "stream:full", "5-1", "6-1"},
       {"XGROUP", "CREATE", "stream:full", "g1", "0"},
       {"XGROUP", "CREATE", "stream:full", "g2", "0"},
       {"XREADGROUP", "GROUP", "g1", "alice", "COUNT", "5", "STREAMS", "stream:full", ">"},
       {"XREADGROUP", "GROUP", "g1", "bob", "COUNT", "3", "STREAMS", "stream:full", ">"},
       {"XGROUP", "CREATECONSUMER", "stream:full", "g1", "carol"},
       {"XREADGROUP", "GROUP", "g2", "dave", "COUNT", "12", "STREAMS", "stream:full", ">"},
       {"XCLAIM", "stream:full", "g1", "bob", "0", "1-1", "2-1"},
       {"XCLAIM", "stream:full", "g1", "bob", "0", "1-1"},
       {"XACK", "stream:full", "g2", "3-1"},
       {"XSETID", "stream:full", "1000-7"},
       {"PEXPIRE", "stream:full", "200000"},
       // An empty stream with a group, and one emptied by XDEL.
       {"XGROUP", "CREATE", "stream:grouped", "g", "$", "MKSTREAM"},
       {"XADD", "stream:emptied", "5-1", "f", "v"},
       {"XDEL", "stream:emptied", "5-1"}});
  Send(conn, stream);
}

redis::Capabilities CapabilitiesOf(redis::Connection& conn) {
  absl::StatusOr<redis::Reply> info = conn.Command({"INFO", "server"});
  EXPECT_TRUE(info.ok()) << info.status();
  return redis::Capabilities::FromInfo(info.ok() ? info->str() : "");
}

std::vector<std::string> Keys(redis::Connection& conn, absl::string_view match = "*") {
  std::vector<std::string> keys;
  std::string cursor = "0";
  do {
    absl::StatusOr<redis::Reply> page =
        conn.Command({"SCAN", cursor, "MATCH", match, "COUNT", "1000"});
    EXPECT_TRUE(page.ok()) << page.status();
    if (!page.ok()) break;
    cursor = std::string(page->element(0).str());
    for (size_t i = 0; i < page->element(1).size(); ++i)
      keys.emplace_back(page->element(1).element(i).str());
  } while (cursor != "0");
  return keys;
}

std::string Describe(const KeyCopy& copy) {
  return absl::StrCat("outcome ", static_cast<int>(copy.outcome), " ", copy.reason);
}

// A source server, a target (a standalone server unless a test opens another), and what a
// ValueCopier needs between them.
class ValueCopyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(ft::RequireRedisServerBinary());
    source_server_ = ft::StartServer();
    target_server_ = ft::StartServer();
    ASSERT_NE(source_server_, nullptr);
    ASSERT_NE(target_server_, nullptr);
    source_.emplace(ft::Connect(*source_server_));
    target_.emplace(ft::Connect(*target_server_));
    OpenSides(source_server_->endpoint(), target_server_->endpoint());
  }

  // Reads both sides' capabilities and clocks through `source` and `target` (a proxy, a
  // cluster...).
  void OpenSides(const redis::Endpoint& source, const redis::Endpoint& target) {
    ASSERT_OK_AND_ASSIGN(redis::Connection source_conn, redis::Connection::Open(source));
    copy_source_.emplace(std::move(source_conn));
    ASSERT_OK_AND_ASSIGN(router_, redis::Router::Open(target, 0, {}));
    ASSERT_OK_AND_ASSIGN(redis::Connection target_conn, redis::Connection::Open(target));
    source_caps_ = CapabilitiesOf(*copy_source_);
    target_caps_ = CapabilitiesOf(target_conn);
    ASSERT_OK_AND_ASSIGN(clock_, AbsoluteExpiryClock(*copy_source_));
    ASSERT_OK_AND_ASSIGN(ExpiryMapper expiry, ExpiryMapper::Measure(&target_conn));
    expiry_.emplace(expiry);
  }

  // Both sides through RESP proxies that answer as Redis 6.0 (and refuse what it would); the
  // copier's connections go through them from now on.
  std::vector<std::unique_ptr<ft::RespProxy>> PretendRedis60() {
    std::vector<std::unique_ptr<ft::RespProxy>> proxies;
    std::vector<redis::Endpoint> endpoints;
    for (const ft::RedisServer* server : {source_server_.get(), target_server_.get()}) {
      ft::RespProxyOptions options = ft::PretendServer(redis::Engine::kRedis, {6, 0});
      options.upstream_port = server->port();
      absl::StatusOr<std::unique_ptr<ft::RespProxy>> proxy = ft::RespProxy::Start(options);
      EXPECT_TRUE(proxy.ok()) << proxy.status();
      if (!proxy.ok()) return proxies;
      absl::StatusOr<redis::Endpoint> endpoint =
          redis::ParseEndpointUri(absl::StrCat("redis://127.0.0.1:", (*proxy)->port()));
      EXPECT_TRUE(endpoint.ok()) << endpoint.status();
      endpoints.push_back(*endpoint);
      proxies.push_back(*std::move(proxy));
    }
    OpenSides(endpoints[0], endpoints[1]);
    return proxies;
  }

  ValueCopier Copier(const ValueCopyOptions& options) {
    return ValueCopier(*copy_source_, *source_caps_, clock_, *router_, *target_caps_, *expiry_,
                       temp_keys_, options);
  }

  KeyCopy CopyKey(const std::string& key, const ValueCopyOptions& options = {}) {
    absl::StatusOr<KeyCopy> copy = Copier(options).Copy(key);
    EXPECT_TRUE(copy.ok()) << key << ": " << copy.status();
    return copy.ok() ? *copy : KeyCopy{Outcome::kFailed, copy.status().ToString()};
  }

  // The batch path for `keys`: each read whole (with its TTL) in one pipeline, then rebuilt in a
  // temporary key and renamed, in another. Every key must be ReadableWhole.
  void RebuildWhole(const std::vector<std::string>& keys) {
    std::vector<std::string> types;
    for (const std::string& key : keys) {
      ASSERT_OK_AND_ASSIGN(redis::Reply type, copy_source_->Command({"TYPE", key}));
      ASSERT_TRUE(ReadableWhole(type.str(), *source_caps_)) << key << ": " << type.str();
      types.emplace_back(type.str());
    }
    for (size_t i = 0; i < keys.size(); ++i) {
      AppendWholeRead(*copy_source_, types[i], keys[i]);
      copy_source_->Append({clock_.has_value() ? "PEXPIRETIME" : "PTTL", keys[i]});
    }
    const absl::Time sent = absl::Now();
    ASSERT_OK(copy_source_->Flush());
    RebuildOptions options;
    options.max_per_command = 3;
    options.source_caps = &*source_caps_;
    options.target_caps = &*target_caps_;
    options.source_now_ms = absl::ToUnixMillis(absl::Now());
    std::vector<redis::Reply> values;
    std::vector<std::string> tmps;
    ArgArena arena;
    size_t commands = 0;
    for (size_t i = 0; i < keys.size(); ++i) {
      ASSERT_OK_AND_ASSIGN(redis::Reply value, copy_source_->ReadReply());
      ASSERT_OK_AND_ASSIGN(redis::Reply expiry, copy_source_->ReadReply());
      ASSERT_FALSE(value.is_error()) << keys[i] << ": " << value.str();
      values.push_back(std::move(value));
      tmps.push_back(temp_keys_.For(keys[i]));
      const size_t rebuilt =
          AppendRebuild(*router_, types[i], tmps.back(), values.back(), options, arena);
      const size_t elements = types[i] == "hash" || types[i] == "zset" ? values.back().size() / 2
                                                                       : values.back().size();
      if (types[i] == "stream") {
        EXPECT_GE(rebuilt, 2u) << keys[i];  // XSETID and at least one XADD.
      } else {
        EXPECT_EQ(rebuilt, types[i] == "string" ? 1 : (elements + 2) / 3) << keys[i];
      }
      std::optional<int64_t> ttl;
      const int64_t local = LocalExpiry(expiry.integer(), clock_, sent);
      if (local >= 0) ttl = expiry_->RestoreTtl(local);
      commands += rebuilt + AppendFinish(*router_, tmps.back(), keys[i], ttl, expiry_->absolute(),
                                         /*replace=*/true, /*unlink_first=*/false, arena);
    }
    EXPECT_EQ(router_->queued(), commands);
    ASSERT_OK_AND_ASSIGN(std::vector<redis::Reply> replies, router_->Execute());
    for (const redis::Reply& reply : replies) EXPECT_FALSE(reply.is_error()) << reply.str();
  }

  // Copies every key of the source; each must be copied.
  void CopyAll(const ValueCopyOptions& options) {
    ValueCopier copier = Copier(options);
    for (const std::string& key : Keys(*source_)) {
      absl::StatusOr<KeyCopy> copy = copier.Copy(key);
      ASSERT_TRUE(copy.ok()) << key << ": " << copy.status();
      EXPECT_EQ(copy->outcome, Outcome::kCopied) << key << ": " << Describe(*copy);
    }
  }

  std::unique_ptr<ft::RedisServer> source_server_;
  std::unique_ptr<ft::RedisServer> target_server_;
  std::optional<redis::Connection> source_;  // The test's own connections.
  std::optional<redis::Connection> target_;
  std::optional<redis::Connection> copy_source_;  // The copier's.
  std::unique_ptr<redis::Router> router_;
  std::optional<redis::Capabilities> source_caps_;
  std::optional<redis::Capabilities> target_caps_;
  std::optional<SourceClock> clock_;
  std::optional<ExpiryMapper> expiry_;
  TempKeys temp_keys_;
};

TEST_F(ValueCopyTest, EveryTypeInSmallPages) {
  ASSERT_OK(ft::LoadMixedData(*source_, 0, 1300, 7, 0.3));
  LoadSpecials(*source_);
  CopyAll(SmallPages());
  // Also proves no temporary key was left behind (an extra key in the target).
  EXPECT_TRUE(ft::SameData(*source_, 0, *target_, 0));
}

TEST_F(ValueCopyTest, EveryTypeWithDefaultOptions) {
  ASSERT_OK(ft::LoadMixedData(*source_, 0, 400, 8, 0.3));
  LoadSpecials(*source_);
  CopyAll({});
  EXPECT_TRUE(ft::SameData(*source_, 0, *target_, 0));
}

// ShardReader/ShardWriter's way: one read per value, then rebuild and rename, all pipelined.
TEST_F(ValueCopyTest, BatchHelpersRebuildEveryWholeType) {
  ASSERT_OK(ft::LoadMixedData(*source_, 0, 650, 9, 0.3));
  LoadSpecials(*source_);
  RebuildWhole(Keys(*source_));
  EXPECT_TRUE(ft::SameData(*source_, 0, *target_, 0));
}

// Pending entries whose entries were deleted (first, middle, last, all of a stream's), written,
// claimed and deleted again in the one pass the whole PEL allows.
TEST_F(ValueCopyTest, BatchHelpersRebuildDeletedPendingEntries) {
  std::vector<std::vector<std::string>> commands;
  for (int i = 1; i <= 20; ++i) commands.push_back({"XADD", "s", absl::StrCat(i, "-1"), "f", "v"});
  for (int i = 1; i <= 3; ++i) commands.push_back({"XADD", "all", absl::StrCat(i, "-1"), "f", "v"});
  commands.insert(commands.end(),
                  {{"XGROUP", "CREATE", "s", "g", "0"},
                   {"XGROUP", "CREATE", "s", "other", "0"},
                   {"XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"},
                   {"XREADGROUP", "GROUP", "other", "c", "COUNT", "3", "STREAMS", "s", ">"},
                   {"XCLAIM", "s", "g", "d", "0", "9-1", "20-1"},
                   {"XDEL", "s", "1-1", "8-1", "9-1", "15-1", "20-1"},
                   {"XADD", "s", "21-1", "f", "v"},
                   {"XGROUP", "CREATE", "all", "g", "0"},
                   {"XREADGROUP", "GROUP", "g", "c", "STREAMS", "all", ">"},
                   {"XDEL", "all", "1-1", "2-1", "3-1"}});
  Send(*source_, commands);
  RebuildWhole({"s", "all"});
  EXPECT_TRUE(ft::SameData(*source_, 0, *target_, 0));
  EXPECT_EQ(Integer(*target_, {"XLEN", "all"}), 0);
}

TEST_F(ValueCopyTest, AppendFinishWithoutReplaceLeavesAnExistingKey) {
  ASSERT_OK(target_->Command({"SET", "k", "old"}).status());
  ArgArena arena;
  router_->Add({"SET", "tmp", "new"});
  EXPECT_EQ(AppendFinish(*router_, "tmp", "k", 60000, /*absolute=*/false, /*replace=*/false,
                         /*unlink_first=*/true, arena),
            2u);
  ASSERT_OK_AND_ASSIGN(std::vector<redis::Reply> replies, router_->Execute());
  EXPECT_EQ(replies.back().integer(), 0);  // RENAMENX: the key exists.
  ASSERT_OK_AND_ASSIGN(redis::Reply value, target_->Command({"GET", "k"}));
  EXPECT_EQ(value.str(), "old");
  EXPECT_GT(Integer(*target_, {"PTTL", "tmp"}), 50000);  // Left for the caller, with its TTL.
  EXPECT_EQ(AppendRebuild(*router_, "hash", "tmp2", redis::ReplyView(nullptr), {3}, arena), 0u);
}

TEST_F(ValueCopyTest, TtlsAreNeverExtendedAndAnOldTtlIsDropped) {
  Send(*source_, {{"SET", "s", "v", "PX", "50000"},
                  {"HSET", "h", "f", "v"},
                  {"PEXPIRE", "h", "40000"},
                  {"SET", "no-ttl", "v"}});
  Send(*target_, {{"SET", "no-ttl", "old", "PX", "90000"}, {"SET", "s", "old", "PX", "90000"}});
  for (const char* key : {"s", "h", "no-ttl"}) {
    EXPECT_EQ(CopyKey(key).outcome, Outcome::kCopied) << key;
    const int64_t source_ttl = Integer(*source_, {"PTTL", key});
    const int64_t target_ttl = Integer(*target_, {"PTTL", key});
    if (source_ttl == -1) {
      EXPECT_EQ(target_ttl, -1) << key;
      continue;
    }
    EXPECT_LE(target_ttl, source_ttl) << key;
    EXPECT_GT(target_ttl, source_ttl - 2000) << key;
  }
}

TEST_F(ValueCopyTest, ConflictPolicies) {
  const std::vector<std::vector<std::string>> shared = {{"SET", "same", "v"},
                                                        {"HSET", "hash", "a", "1", "b", "2"}};
  Send(*source_, shared);
  Send(*source_, {{"SET", "differs", "source"}});
  Send(*target_, shared);
  Send(*target_, {{"SET", "differs", "target"}});

  ValueCopyOptions options = SmallPages();
  options.on_conflict = OnConflict::kSkip;
  EXPECT_EQ(CopyKey("same", options).outcome, Outcome::kCopied);
  EXPECT_EQ(CopyKey("hash", options).outcome, Outcome::kCopied);
  const KeyCopy skipped = CopyKey("differs", options);
  EXPECT_EQ(skipped.outcome, Outcome::kSkipped) << Describe(skipped);
  options.on_conflict = OnConflict::kFail;
  const KeyCopy failed = CopyKey("differs", options);
  EXPECT_EQ(failed.outcome, Outcome::kFailed);
  EXPECT_EQ(failed.reason, "exists on the target (the conflict policy is fail)");
  ASSERT_OK_AND_ASSIGN(redis::Reply kept, target_->Command({"GET", "differs"}));
  EXPECT_EQ(kept.str(), "target");
  EXPECT_EQ(ft::DbSize(*target_server_), 3);  // No temporary key left.

  options.on_conflict = OnConflict::kReplace;
  EXPECT_EQ(CopyKey("differs", options).outcome, Outcome::kCopied);
  EXPECT_TRUE(ft::SameData(*source_, 0, *target_, 0));

  // Streams rebuilt at different times differ in their delivery times only: the same value.
  // (Pages of 100 bytes would make it too big to compare.)
  options = {};
  LoadSpecials(*source_);
  EXPECT_EQ(CopyKey("stream:full", options).outcome, Outcome::kCopied);
  options.on_conflict = OnConflict::kSkip;
  EXPECT_EQ(CopyKey("stream:full", options).outcome, Outcome::kCopied);
  ASSERT_OK(target_->Command({"XACK", "stream:full", "g1", "7-1"}).status());
  EXPECT_EQ(CopyKey("stream:full", options).outcome, Outcome::kSkipped);
}

TEST_F(ValueCopyTest, TypesTheTargetCannotHoldFail) {
  LoadSpecials(*source_);
  target_caps_ = redis::Capabilities::ForVersion({4, 0});
  const KeyCopy stream = CopyKey("stream:full");
  EXPECT_EQ(stream.outcome, Outcome::kFailed);
  EXPECT_THAT(stream.reason, HasSubstr("stream"));
  EXPECT_THAT(stream.reason, HasSubstr("Redis 4.0"));
  EXPECT_EQ(CopyKey("string:binary").outcome, Outcome::kCopied);
  EXPECT_EQ(ft::DbSize(*target_server_), 1);
}

// XCLAIM cannot claim an entry that is gone: the copy writes such entries, claims and deletes
// them. Small pages, so that they fall on both sides of page boundaries.
TEST_F(ValueCopyTest, PendingEntriesOfDeletedEntriesAreKept) {
  std::vector<std::vector<std::string>> commands;
  for (int i = 1; i <= 20; ++i) commands.push_back({"XADD", "s", absl::StrCat(i, "-1"), "f", "v"});
  commands.insert(commands.end(), {{"XGROUP", "CREATE", "s", "g", "0"},
                                   {"XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"},
                                   {"XCLAIM", "s", "g", "d", "0", "9-1", "20-1"},
                                   {"XDEL", "s", "1-1", "8-1", "9-1", "15-1", "20-1"},
                                   {"XADD", "s", "21-1", "f", "v"}});
  Send(*source_, commands);
  const KeyCopy copy = CopyKey("s", SmallPages());
  EXPECT_EQ(copy.outcome, Outcome::kCopied) << Describe(copy);
  EXPECT_TRUE(ft::SameData(*source_, 0, *target_, 0));
}

TEST_F(ValueCopyTest, VanishedKey) {
  EXPECT_EQ(CopyKey("nothing").outcome, Outcome::kVanished);
  EXPECT_EQ(ft::DbSize(*target_server_), 0);
}

// Writes to the source from another thread as soon as a temporary key shows on the target (a
// copy is under way): `commands` once, or, with `repeat`, again and again until destroyed, each
// time with two more arguments (a new field and its value).
class Writer {
 public:
  Writer(const ft::RedisServer& source, const ft::RedisServer& target,
         std::vector<std::vector<std::string>> commands, bool repeat)
      : thread_([this, &source, &target, commands, repeat] {
          redis::Connection source_conn = ft::Connect(source);
          redis::Connection target_conn = ft::Connect(target);
          while (!stop_ && Keys(target_conn, "ferry:tmp:*").empty()) {
          }
          for (int n = 0; !stop_ && (n == 0 || repeat); ++n) {
            for (std::vector<std::string> command : commands) {
              if (repeat) command.insert(command.end(), {absl::StrCat("new", n), "v"});
              EXPECT_TRUE(redis::RunPipeline(source_conn, {command}).ok());
            }
          }
          done_ = true;
        }) {}
  ~Writer() {
    stop_ = true;
    thread_.join();
  }
  bool done() const { return done_; }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<bool> done_{false};
  std::thread thread_;
};

void LoadHash(redis::Connection& conn, const std::string& key, int fields) {
  std::vector<std::vector<std::string>> commands;
  for (int first = 0; first < fields; first += 1000) {
    commands.push_back({"HSET", key});
    for (int i = first; i < std::min(fields, first + 1000); ++i) {
      commands.back().insert(commands.back().end(), {absl::StrCat("field", i), absl::StrCat(i)});
    }
  }
  Send(conn, commands);
}

// TYPE calls on the source since CONFIG RESETSTAT: three per attempt of a copy.
int64_t TypeCalls(redis::Connection& conn) {
  absl::StatusOr<redis::Reply> stats = conn.Command({"INFO", "commandstats"});
  EXPECT_TRUE(stats.ok()) << stats.status();
  const std::string calls = redis::InfoField(stats.ok() ? stats->str() : "", "cmdstat_type");
  int64_t n = 0;
  const size_t start = calls.find("calls=") + 6;
  EXPECT_TRUE(absl::SimpleAtoi(calls.substr(start, calls.find(',') - start), &n)) << calls;
  return n;
}

TEST_F(ValueCopyTest, KeyChangedWhileCopiedIsCopiedAgain) {
  LoadHash(*source_, "grows", 20000);
  LoadHash(*source_, "becomes-a-string", 20000);
  ValueCopyOptions options = SmallPages();
  options.chunk_bytes = 1 << 20;
  options.page_elements = 10;
  for (const auto& [key, change] :
       std::vector<std::pair<std::string, std::vector<std::vector<std::string>>>>{
           {"grows", {{"HSET", "grows", "new", "field"}}},
           {"becomes-a-string", {{"SET", "becomes-a-string", "s"}}}}) {
    ASSERT_OK(source_->Command({"CONFIG", "RESETSTAT"}).status());
    KeyCopy copy;
    {
      Writer writer(*source_server_, *target_server_, change, /*repeat=*/false);
      copy = CopyKey(key, options);
      EXPECT_TRUE(writer.done()) << "the change came after the copy";
    }
    EXPECT_EQ(copy.outcome, Outcome::kCopied) << key << ": " << Describe(copy);
    EXPECT_GE(TypeCalls(*source_), 6) << key << " was not copied again";
  }
  EXPECT_TRUE(ft::SameData(*source_, 0, *target_, 0));
}

TEST_F(ValueCopyTest, KeyThatKeepsChangingFails) {
  LoadHash(*source_, "h", 5000);
  ValueCopyOptions options = SmallPages();
  options.page_elements = 10;
  {
    Writer writer(*source_server_, *target_server_, {{"HSET", "h"}}, /*repeat=*/true);
    const KeyCopy copy = CopyKey("h", options);
    EXPECT_EQ(copy.outcome, Outcome::kFailed);
    EXPECT_THAT(copy.reason, HasSubstr("kept changing while it was copied"));
  }
  EXPECT_EQ(ft::DbSize(*target_server_), 0);
  EXPECT_EQ(CopyKey("h", options).outcome, Outcome::kCopied);
  EXPECT_TRUE(ft::SameData(*source_, 0, *target_, 0));
}

// XRANGE, last id, groups' last ids, and pending entries (id, owner, deliveries) of `key`:
// what a target without the 7.0 stream counters and CREATECONSUMER still holds of a stream.
std::string StreamCore(redis::Connection& conn, const std::string& key) {
  std::vector<std::vector<std::string>> commands = {{"XRANGE", key, "-", "+"},
                                                    {"XINFO", "STREAM", key}};
  for (const char* group : {"g1", "g2"})
    commands.push_back({"XPENDING", key, group, "-", "+", "100"});
  absl::StatusOr<std::vector<redis::Reply>> replies = redis::RunPipeline(conn, commands);
  EXPECT_TRUE(replies.ok()) << replies.status();
  if (!replies.ok()) return "";
  std::string core = absl::StrCat((*replies)[0].size(), " entries;");
  for (size_t i = 0; i < (*replies)[0].size(); ++i) {
    const redis::ReplyView entry = (*replies)[0].element(i);
    absl::StrAppend(&core, entry.element(0).str(), "=");
    for (size_t f = 0; f < entry.element(1).size(); ++f) {
      absl::StrAppend(&core, entry.element(1).element(f).str(), ",");
    }
  }
  const redis::ReplyView info = (*replies)[1];
  for (size_t i = 0; i + 1 < info.size(); i += 2) {
    if (info.element(i).str() == "last-generated-id")
      absl::StrAppend(&core, ";last=", info.element(i + 1).str());
  }
  for (size_t g = 2; g < replies->size(); ++g) {
    for (size_t p = 0; p < (*replies)[g].size(); ++p) {
      const redis::ReplyView pending = (*replies)[g].element(p);
      absl::StrAppend(&core, ";", pending.element(0).str(), ":", pending.element(1).str(), "x",
                      pending.element(3).integer());
    }
  }
  return core;
}

// Redis 6.0 on both sides: no exclusive ranges (the next id is computed), no XSETID counters,
// no XGROUP CREATECONSUMER, no PEXPIRETIME. The proxy refuses what 6.0 would.
TEST_F(ValueCopyTest, OlderServers) {
  ASSERT_OK(ft::LoadMixedData(*source_, 0, 300, 10, 0.3));
  LoadSpecials(*source_);
  std::vector<std::unique_ptr<ft::RespProxy>> proxies = PretendRedis60();
  ASSERT_EQ(source_caps_->version(), std::make_pair(6, 0));
  ASSERT_FALSE(clock_.has_value());
  CopyAll(SmallPages());
  EXPECT_GT(proxies[0]->commands_seen("XRANGE"), 5u);
  for (const std::string& key : Keys(*source_, "*stream*")) {
    EXPECT_EQ(StreamCore(*target_, key), StreamCore(*source_, key)) << key;
    ASSERT_OK(source_->Command({"DEL", key}).status());
    ASSERT_OK(target_->Command({"DEL", key}).status());
  }
  EXPECT_TRUE(ft::SameData(*source_, 0, *target_, 0));
}

// A 6.0 source has XINFO STREAM FULL, so its small streams are read whole in batches, but no
// stream counters, and a 6.0 target has no XGROUP CREATECONSUMER: the rebuild sends neither
// (the proxy refuses what 6.0 would). A 5.0 source's streams are ValueCopier's.
TEST_F(ValueCopyTest, BatchStreamsFromOlderServers) {
  LoadSpecials(*source_);
  std::vector<std::unique_ptr<ft::RespProxy>> proxies = PretendRedis60();
  ASSERT_EQ(source_caps_->version(), std::make_pair(6, 0));
  EXPECT_FALSE(ReadableWhole("stream", redis::Capabilities::ForVersion({5, 0})));
  const std::vector<std::string> streams = Keys(*source_, "stream:*");
  ASSERT_EQ(streams.size(), 3u);
  RebuildWhole(streams);
  EXPECT_EQ(proxies[0]->commands_seen("XINFO"), streams.size());
  EXPECT_EQ(proxies[0]->commands_seen("XRANGE"), 0u);
  for (const std::string& key : streams) {
    EXPECT_EQ(StreamCore(*target_, key), StreamCore(*source_, key)) << key;
  }
  EXPECT_EQ(ft::DbSize(*target_server_), 3);  // No temporary key left.
}

TEST(TempKeysTest, LandInTheKeysSlot) {
  TempKeys temp_keys;
  std::vector<std::string> keys = {"", "{", "}", "{}", "{}x{a}", "a{b}c", "{user:1}:cart", "x{"};
  for (int i = 0; i < 20000; ++i) keys.push_back(absl::StrCat("key:", i, i % 3 == 0 ? "{t}" : ""));
  for (const std::string& key : keys) {
    const std::string tmp = temp_keys.For(key);
    EXPECT_EQ(redis::KeySlot(tmp), redis::KeySlot(key)) << key << " -> " << tmp;
    EXPECT_TRUE(absl::StartsWith(tmp, "ferry:tmp:{")) << tmp;
  }
  EXPECT_NE(temp_keys.For("a"), temp_keys.For("a"));
  EXPECT_NE(TempKeys().For("a"), TempKeys().For("a"));
}

// Every key type, keys with braces included.
TEST_F(ValueCopyTest, ClusterTarget) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ft::RedisCluster> cluster, ft::RedisCluster::Start(3, 0));
  ASSERT_OK(ft::LoadMixedData(*source_, 0, 650, 11, 0.3));
  LoadSpecials(*source_);
  for (const std::string& key : Keys(*source_, "*stream*")) {
    if (key != "stream:emptied") ASSERT_OK(source_->Command({"DEL", key}).status());
  }
  Send(*source_, {{"HSET", "{user:1}:profile", "name", "x"},
                  {"SET", "{}{braces}", "v"},
                  {"RPUSH", "a{b}c", "1", "2", "3"},
                  {"XADD", "stream:without-groups", "1-1", "f", "v"}});
  OpenSides(source_server_->endpoint(), cluster->endpoint());
  ASSERT_TRUE(router_->cluster());
  CopyAll(SmallPages());
  ASSERT_OK_AND_ASSIGN(
      std::vector<ft::KeyDiff> diffs,
      ft::CompareDeployments(source_server_->endpoint(), 0, cluster->endpoint(), 0));
  EXPECT_THAT(diffs, ::testing::IsEmpty());

  // XGROUP reaches the node of its key (its third argument), and no temporary key is left.
  Send(*source_, {{"XGROUP", "CREATE", "stream:grouped", "g", "$", "MKSTREAM"}});
  EXPECT_EQ(CopyKey("stream:grouped").outcome, Outcome::kCopied);
  ASSERT_OK_AND_ASSIGN(
      diffs, ft::CompareDeployments(source_server_->endpoint(), 0, cluster->endpoint(), 0));
  EXPECT_THAT(diffs, ::testing::IsEmpty());
}

// XGROUP's key is its third argument: the router must send it to the node of that key, not of
// "CREATE", for streams with groups to reach a cluster whole.
TEST_F(ValueCopyTest, ClusterTargetStreamGroups) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ft::RedisCluster> cluster, ft::RedisCluster::Start(3, 0));
  LoadSpecials(*source_);
  for (const std::string& key : Keys(*source_)) {
    if (key.rfind("stream:", 0) != 0) ASSERT_OK(source_->Command({"DEL", key}).status());
  }
  OpenSides(source_server_->endpoint(), cluster->endpoint());
  CopyAll(SmallPages());
  ASSERT_OK_AND_ASSIGN(
      std::vector<ft::KeyDiff> diffs,
      ft::CompareDeployments(source_server_->endpoint(), 0, cluster->endpoint(), 0));
  EXPECT_THAT(diffs, ::testing::IsEmpty());
}

// `n` elements of one big key through pipelines of 1000-element commands: `command key`
// followed by `element(i)` for each i.
template <typename Element>
void LoadBig(redis::Connection& conn, const std::string& command, const std::string& key, int n,
             Element element) {
  std::vector<std::vector<std::string>> commands;
  for (int first = 0; first < n; first += 1000) {
    commands.push_back({command, key});
    for (int i = first; i < std::min(n, first + 1000); ++i) element(i, commands.back());
    if (commands.size() == 50 || first + 1000 >= n) {
      Send(conn, commands);
      commands.clear();
    }
  }
}

// Commands the server logged as slower than slowlog-log-slower-than since SLOWLOG RESET, with
// their duration in µs.
std::vector<std::pair<std::string, int64_t>> SlowCommands(redis::Connection& conn) {
  std::vector<std::pair<std::string, int64_t>> slow;
  absl::StatusOr<redis::Reply> log = conn.Command({"SLOWLOG", "GET", "1000"});
  EXPECT_TRUE(log.ok()) << log.status();
  for (size_t i = 0; log.ok() && i < log->size(); ++i) {
    const redis::ReplyView entry = log->element(i);
    slow.emplace_back(entry.element(3).element(0).str(), entry.element(2).integer());
  }
  return slow;
}

// Fails for any command in `slow` but a page's: a whole-value command (DUMP, RESTORE, HGETALL,
// DEL or RENAME over a big value) takes hundreds of ms on these keys. A page's command runs in
// about 2 ms here, but this machine is shared and a server that waits for a CPU shows in
// SLOWLOG too: up to 50 ms are tolerated (and printed). So is APPEND on the target: a string of
// hundreds of MB that grows is sometimes reallocated and copied by the server's allocator, in
// as long as the string is big, however small the pieces.
void ExpectNoSlowCommand(absl::string_view side,
                         const std::vector<std::pair<std::string, int64_t>>& slow) {
  for (const auto& [command, micros] : slow) {
    const bool page = command == "HSCAN" || command == "ZSCAN" || command == "GETRANGE" ||
                      command == "HSET" || command == "ZADD";
    if (command == "APPEND" && side == "target") {
      std::cerr << "slow APPEND on the target (a reallocation): " << micros << " µs\n";
    } else if (page && micros < 50000) {
      std::cerr << "slow page on the " << side << " (a busy machine?): " << command << " " << micros
                << " µs\n";
    } else {
      ADD_FAILURE() << "slow on the " << side << ": " << command << " " << micros << " µs";
    }
  }
}

// The largest client output buffer of the last few seconds: the biggest reply the copier read.
int64_t RecentMaxReply(redis::Connection& conn) {
  absl::StatusOr<redis::Reply> info = conn.Command({"INFO", "clients"});
  EXPECT_TRUE(info.ok()) << info.status();
  int64_t bytes = -1;
  EXPECT_TRUE(absl::SimpleAtoi(
      redis::InfoField(info.ok() ? info->str() : "", "client_recent_max_output_buffer"), &bytes));
  return bytes;
}

// A 200 MB string, a 2M-field hash and a 2M-member sorted set, copied with the default options:
// no whole-value command on either side (ExpectNoSlowCommand) and no reply much bigger than a
// page.
TEST_F(ValueCopyTest, BigKeysWithoutASlowCommand) {
  const absl::Time start = absl::Now();
  std::vector<std::vector<std::string>> appends;
  for (int i = 0; i < 200; ++i) {
    appends.push_back(
        {"APPEND", "big:string", std::string(1 << 20, static_cast<char>('a' + i % 26))});
    appends.back()[2].replace(0, 8, absl::StrCat(10000000 + i));
    if (appends.size() == 10) {
      Send(*source_, appends);
      appends.clear();
    }
  }
  LoadBig(*source_, "HSET", "big:hash", 2000000, [](int i, std::vector<std::string>& argv) {
    argv.insert(argv.end(), {absl::StrCat("field:", i), absl::StrCat("value:", i * 7)});
  });
  LoadBig(*source_, "ZADD", "big:zset", 2000000, [](int i, std::vector<std::string>& argv) {
    argv.insert(argv.end(), {absl::StrCat(i * 0.37), absl::StrCat("member:", i)});
  });
  std::cerr << "loaded in " << absl::Now() - start << "\n";
  for (redis::Connection* conn : {&*source_, &*target_}) {
    Send(*conn, {{"CONFIG", "SET", "slowlog-log-slower-than", "10000"}, {"SLOWLOG", "RESET"}});
  }

  const ValueCopyOptions options;
  for (const char* key : {"big:hash", "big:zset", "big:string"}) {
    const absl::Time copy_start = absl::Now();
    const KeyCopy copy = CopyKey(key, options);
    EXPECT_EQ(copy.outcome, Outcome::kCopied) << key << ": " << Describe(copy);
    EXPECT_LT(RecentMaxReply(*source_), 3 * options.chunk_bytes) << key;
    std::cerr << key << " copied in " << absl::Now() - copy_start << " (" << copy.bytes
              << " bytes)\n";
  }
  ExpectNoSlowCommand("source", SlowCommands(*source_));
  ExpectNoSlowCommand("target", SlowCommands(*target_));

  // The string whole; the hash and the sorted set by size and every 997th element (a full
  // comparison of 4M elements takes longer than the copy).
  std::vector<std::vector<std::string>> reads = {{"GET", "big:string"},   {"HLEN", "big:hash"},
                                                 {"ZCARD", "big:zset"},   {"HMGET", "big:hash"},
                                                 {"ZMSCORE", "big:zset"}, {"PTTL", "big:hash"}};
  for (int i = 0; i < 2000000; i += 997) {
    reads[3].push_back(absl::StrCat("field:", i));
    reads[4].push_back(absl::StrCat("member:", i));
  }
  ASSERT_OK_AND_ASSIGN(std::vector<redis::Reply> source, redis::RunPipeline(*source_, reads));
  ASSERT_OK_AND_ASSIGN(std::vector<redis::Reply> target, redis::RunPipeline(*target_, reads));
  EXPECT_EQ(target[0].str().size(), 200u << 20);
  EXPECT_TRUE(target[0].str() == source[0].str());
  EXPECT_EQ(target[1].integer(), 2000000);
  EXPECT_EQ(target[2].integer(), 2000000);
  for (size_t i = 0; i < reads[3].size() - 2; ++i) {
    EXPECT_EQ(target[3].element(i).str(), source[3].element(i).str()) << reads[3][i + 2];
    EXPECT_EQ(target[4].element(i).str(), source[4].element(i).str()) << reads[4][i + 2];
  }
  EXPECT_EQ(target[5].integer(), -1);
}

}  // namespace
}  // namespace ferry::agent
