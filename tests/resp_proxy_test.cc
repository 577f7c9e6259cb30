// Tests of RespProxy (common/testing/resp_proxy.h), the proxy that makes the local Redis 7.0
// look like another server version. Its pure parts (framing, INFO rewriting) first, then the
// proxy in front of a real redis-server. Tests of other code trust it to pretend faithfully
// and to pass everything else through untouched and in order, so both are checked here.

#include "common/testing/resp_proxy.h"

#include <signal.h>

#include <memory>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/redis/capabilities.h"
#include "common/redis/connection.h"
#include "common/redis/dump_payload.h"
#include "common/testing/process.h"
#include "common/testing/redis_server.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace ferry::testing {
namespace {

// Every complete message `framer` holds, as strings.
std::vector<std::string> Frames(RespFramer& framer) {
  std::vector<std::string> frames;
  while (true) {
    absl::StatusOr<std::optional<absl::string_view>> next = framer.Next();
    EXPECT_TRUE(next.ok()) << next.status();
    if (!next.ok() || !next->has_value()) return frames;
    frames.emplace_back(**next);
  }
}

// ---------------------------------------------------------------- framing

TEST(RespFramerTest, SplitsRepliesAtEveryByteBoundary) {
  const std::vector<std::string> replies = {
      "+OK\r\n",
      "-ERR no\r\n",
      ":42\r\n",
      "$-1\r\n",
      "$0\r\n\r\n",
      std::string("$6\r\na\r\n\0b\n\r\n", 12),  // Binary: CRLF and NUL inside.
      "*-1\r\n",
      "*0\r\n",
      "*2\r\n$1\r\n0\r\n*3\r\n$1\r\na\r\n*1\r\n:1\r\n*0\r\n",  // A SCAN-like nest.
      "%1\r\n+k\r\n~2\r\n_\r\n#t\r\n",
      "|1\r\n+ttl\r\n:3\r\n=8\r\ntxt:info\r\n",
      ">2\r\n+message\r\n,1.5\r\n",
  };
  std::string stream;
  for (const std::string& reply : replies) stream += reply;

  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    RespFramer framer(/*inline_commands=*/false);
    framer.Append(absl::string_view(stream).substr(0, cut));
    std::vector<std::string> frames = Frames(framer);
    framer.Append(absl::string_view(stream).substr(cut));
    for (std::string& frame : Frames(framer)) frames.push_back(std::move(frame));
    ASSERT_EQ(frames, replies) << "cut at " << cut;
  }
}

TEST(RespFramerTest, FramesByteByByte) {
  const std::string stream =
      "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv\n\r\nPING\r\n\r\n*1\r\n$4\r\nPING\r\n";
  RespFramer framer(/*inline_commands=*/true);
  std::vector<std::string> frames;
  for (char c : stream) {
    framer.Append(absl::string_view(&c, 1));
    for (std::string& frame : Frames(framer)) frames.push_back(std::move(frame));
  }
  EXPECT_EQ(frames, (std::vector<std::string>{"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv\n\r\n",
                                              "PING\r\n", "\r\n", "*1\r\n$4\r\nPING\r\n"}));
}

TEST(RespFramerTest, RejectsGarbage) {
  RespFramer framer(/*inline_commands=*/false);
  framer.Append("?what\r\n");
  EXPECT_EQ(framer.Next().status().code(), absl::StatusCode::kInvalidArgument);
  RespFramer bad_length(/*inline_commands=*/false);
  bad_length.Append("$x\r\n");
  EXPECT_EQ(bad_length.Next().status().code(), absl::StatusCode::kInvalidArgument);
  RespFramer no_crlf(/*inline_commands=*/false);
  no_crlf.Append("$1\r\nab\r\n");
  EXPECT_EQ(no_crlf.Next().status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParseCommandTest, ArraysAndInlineLines) {
  const std::string message("*2\r\n$3\r\nGET\r\n$3\r\na\0b\r\n", 21);  // argv points into it.
  ASSERT_OK_AND_ASSIGN(std::vector<absl::string_view> argv, ParseCommand(message));
  EXPECT_EQ(argv, (std::vector<absl::string_view>{"GET", absl::string_view("a\0b", 3)}));
  ASSERT_OK_AND_ASSIGN(argv, ParseCommand("info  keyspace\r\n"));
  EXPECT_EQ(argv, (std::vector<absl::string_view>{"info", "keyspace"}));
  ASSERT_OK_AND_ASSIGN(argv, ParseCommand("\r\n"));
  EXPECT_TRUE(argv.empty());
  EXPECT_FALSE(ParseCommand("*1\r\n:1\r\n").ok());
}

TEST(UnknownCommandReplyTest, MatchesRedis7) {
  EXPECT_EQ(UnknownCommandReply({"pexpiretime", "key:1"}),
            "-ERR unknown command 'pexpiretime', with args beginning with: 'key:1' \r\n");
  EXPECT_EQ(UnknownCommandReply({"FOO"}),
            "-ERR unknown command 'FOO', with args beginning with: \r\n");
  // A binary argument cannot break the one-line error.
  EXPECT_EQ(UnknownCommandReply({"X", "a\r\nb"}),
            "-ERR unknown command 'X', with args beginning with: 'a  b' \r\n");
}

// ---------------------------------------------------------------- INFO rewriting

constexpr absl::string_view kInfo =
    "# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\n\r\n"
    "# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\ndb12:keys=1,expires=1,avg_ttl=5\r\n";

TEST(RewriteInfoTest, PretendsAVersion) {
  RespProxyOptions options;
  options.pretend_version = "4.0.14";
  EXPECT_EQ(RewriteInfoText(kInfo, options),
            "# Server\r\nredis_version:4.0.14\r\nredis_git_sha1:00000000\r\n\r\n"
            "# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\ndb12:keys=1,expires=1,avg_ttl=5\r\n");
  EXPECT_EQ(redis::InfoField(RewriteInfoText(kInfo, options), "redis_version"), "4.0.14");
}

TEST(RewriteInfoTest, PretendsValkeyReplacingItsFields) {
  RespProxyOptions options;
  options.pretend_valkey_version = "8.0.1";
  const std::string valkey = RewriteInfoText(kInfo, options);
  EXPECT_TRUE(absl::StartsWith(valkey,
                               "# Server\r\nredis_version:7.2.4\r\nserver_name:valkey\r\n"
                               "valkey_version:8.0.1\r\nredis_git_sha1:"))
      << valkey;
  // Already Valkey's fields (an upstream Valkey, or rewriting twice): replaced, not doubled.
  options.pretend_valkey_version = "9.0.0";
  const std::string again = RewriteInfoText(valkey, options);
  EXPECT_EQ(redis::InfoField(again, "valkey_version"), "9.0.0");
  EXPECT_EQ(again.find("server_name"), again.rfind("server_name"));
  // Without a redis_version line (INFO keyspace) nothing is added.
  EXPECT_EQ(RewriteInfoText("# Keyspace\r\n", options), "# Keyspace\r\n");
}

TEST(RewriteInfoTest, StripsKeyspaceLinesOnly) {
  RespProxyOptions options;
  options.strip_info_keyspace = true;
  EXPECT_EQ(RewriteInfoText(kInfo, options),
            "# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\n\r\n# Keyspace\r\n");
  EXPECT_EQ(RewriteInfoText("dbx:1\r\ndb:2\r\n", options), "dbx:1\r\ndb:2\r\n");
}

TEST(RewriteInfoTest, RewritesTheReplyAndItsLength) {
  RespProxyOptions options;
  options.pretend_version = "5.0.7";
  const std::string reply = absl::StrCat("$", kInfo.size(), "\r\n", kInfo, "\r\n");
  const std::string text = RewriteInfoText(kInfo, options);
  EXPECT_EQ(RewriteInfoReply(reply, {}, options),
            absl::StrCat("$", text.size(), "\r\n", text, "\r\n"));
  // RESP3 verbatim string: the format prefix stays.
  const std::string verbatim = absl::StrCat("=", kInfo.size() + 4, "\r\ntxt:", kInfo, "\r\n");
  EXPECT_EQ(RewriteInfoReply(verbatim, {}, options),
            absl::StrCat("=", text.size() + 4, "\r\ntxt:", text, "\r\n"));
  EXPECT_EQ(RewriteInfoReply("-NOAUTH Authentication required.\r\n", {}, options),
            "-NOAUTH Authentication required.\r\n");
  // INFO everything / all only when asked for.
  EXPECT_EQ(RewriteInfoReply(reply, {"everything"}, options), RewriteInfoReply(reply, {}, options));
  options.empty_info_everything = true;
  EXPECT_EQ(RewriteInfoReply(reply, {"EVERYTHING"}, options), "$0\r\n\r\n");
  EXPECT_EQ(RewriteInfoReply(reply, {"server", "everything"}, options), "$0\r\n\r\n");
  EXPECT_NE(RewriteInfoReply(reply, {"server"}, options), "$0\r\n\r\n");
  EXPECT_NE(RewriteInfoReply(reply, {"all"}, options), "$0\r\n\r\n");  // 4.0 knows `all`.
}

// ---------------------------------------------------------------- refusals and payloads

TEST(RefusalReplyTest, MatchesTokensWhereTheyStand) {
  const std::vector<RefusedArgument> rules =
      PretendServer(redis::Engine::kRedis, {5, 0}).refused_arguments;
  auto refusal = [&](std::vector<absl::string_view> argv) {
    return RefusalReply(absl::AsciiStrToUpper(argv[0]), argv, rules).value_or("none");
  };
  EXPECT_EQ(refusal({"scan", "0", "type", "hash"}), "-ERR syntax error\r\n");
  EXPECT_EQ(refusal({"SCAN", "0", "COUNT", "10", "TYPE", "hash"}), "-ERR syntax error\r\n");
  // A pattern or a key that spells an option is not one.
  EXPECT_EQ(refusal({"SCAN", "0", "MATCH", "type"}), "none");
  EXPECT_EQ(refusal({"SET", "get", "v"}), "none");
  EXPECT_EQ(refusal({"SET", "k", "v", "px", "5", "get"}), "-ERR syntax error\r\n");
  EXPECT_EQ(refusal({"XRANGE", "(k", "-", "+"}), "none");
  EXPECT_EQ(refusal({"XRANGE", "k", "(1-0", "+"}),
            "-ERR Invalid stream ID specified as stream command argument\r\n");
  // The subcommand is echoed as sent.
  EXPECT_EQ(refusal({"xgroup", "createConsumer", "k", "g", "c"}),
            "-ERR Unknown subcommand or wrong number of arguments for 'createConsumer'. Try "
            "XGROUP HELP.\r\n");
  EXPECT_EQ(refusal({"XGROUP", "CREATE", "k", "g", "$", "ENTRIESREAD", "3"}),
            "-ERR Unknown subcommand or wrong number of arguments for 'CREATE'. Try XGROUP "
            "HELP.\r\n");
  EXPECT_EQ(refusal({"XGROUP", "CREATE", "k", "g", "$", "MKSTREAM"}), "none");
  EXPECT_EQ(refusal({"XSETID", "k", "1-0", "ENTRIESADDED", "1"}),
            "-ERR wrong number of arguments for 'xsetid' command\r\n");
  EXPECT_EQ(refusal({"RESTORE", "k", "0", "payload", "REPLACE", "ABSTTL"}), "none");  // 5.0.
}

TEST(PayloadRewriteTest, InPlaceMatchesWithPayloadVersion) {
  // A DUMP of the string "hello" by Redis 7.0 (version 10), with its CRC.
  const std::string payload = redis::WithPayloadVersion(std::string("\x00\x05hello", 7), 10);
  std::string patched = payload;
  SetPayloadVersionInPlace(patched.data(), patched.size(), 12);
  EXPECT_EQ(patched, redis::WithPayloadVersion(payload, 12));
  EXPECT_TRUE(redis::PayloadChecksumValid(patched));

  std::string out = "+before\r\n";
  AppendDumpReply(absl::StrCat("$", payload.size(), "\r\n", payload, "\r\n"), 80, &out);
  EXPECT_EQ(out, absl::StrCat("+before\r\n$", payload.size(), "\r\n",
                              redis::WithPayloadVersion(payload, 80), "\r\n"));
  for (absl::string_view untouched : {"$-1\r\n", "-ERR no\r\n", "$3\r\nabc\r\n"}) {
    out.clear();
    AppendDumpReply(untouched, 80, &out);
    EXPECT_EQ(out, untouched);
  }
}

TEST(PayloadRewriteTest, RestoreForwardVersionFollowsTheReader) {
  const std::string base = std::string("\x00\x05hello", 7);
  auto forward = [&](int max, int version, absl::string_view valkey = "") {
    RespProxyOptions options;
    options.restore_max_payload_version = max;
    options.pretend_valkey_version = std::string(valkey);
    return RestoreForwardVersion(redis::WithPayloadVersion(base, version), options).value_or(-1);
  };
  EXPECT_EQ(forward(0, 12), -1);      // Off.
  EXPECT_EQ(forward(9, 9), -1);       // Read as it is.
  EXPECT_EQ(forward(9, 10), 0xffff);  // Refused: made newer than 7.0 reads.
  EXPECT_EQ(forward(8, 9), 0xffff);
  EXPECT_EQ(forward(9, 11), -1);   // Refused by 7.0 as it is.
  EXPECT_EQ(forward(12, 11), 10);  // Read by 7.4: what 7.0 reads.
  EXPECT_EQ(forward(12, 12), 10);
  EXPECT_EQ(forward(80, 80, "9.0.0"), 10);
  EXPECT_EQ(forward(80, 12, "9.0.0"), -1);  // Valkey 9's foreign range; 7.0 refuses it too.
  EXPECT_EQ(forward(80, 11, "9.0.0"), 10);
  // A corrupt payload is never given a valid CRC.
  std::string corrupt = redis::WithPayloadVersion(base, 12);
  corrupt[2] ^= 1;
  RespProxyOptions options;
  options.restore_max_payload_version = 12;
  EXPECT_FALSE(RestoreForwardVersion(corrupt, options).has_value());
}

// ---------------------------------------------------------------- hash field TTL reads

TEST(FieldTtlReadTest, ForwardsHmgetOrRefusesTheArity) {
  FieldTtlRead read = RewriteFieldTtlRead({"hpttl", "h", "fields", "2", "a", "b"});
  EXPECT_EQ(read.reply, "");
  EXPECT_EQ(read.forward, "*4\r\n$5\r\nHMGET\r\n$1\r\nh\r\n$1\r\na\r\n$1\r\nb\r\n");
  EXPECT_EQ(read.argument_error, "");
  read = RewriteFieldTtlRead({"HTTL", "h", "FIELDS", "1"});
  EXPECT_EQ(read.reply, "-ERR wrong number of arguments for 'httl' command\r\n");
  EXPECT_EQ(read.forward, "");
  // A bad count still asks for the key's type, which 7.4 checks first.
  read = RewriteFieldTtlRead({"HEXPIRETIME", "h", "FIELDS", "+1", "a"});
  EXPECT_EQ(read.forward, "*3\r\n$5\r\nHMGET\r\n$1\r\nh\r\n$1\r\na\r\n");
  EXPECT_EQ(read.argument_error, "-ERR Number of fields must be a positive integer\r\n");
}

TEST(FieldTtlReadTest, ConvertsHmgetReplies) {
  EXPECT_EQ(FieldTtlReply("*3\r\n$2\r\nv1\r\n$-1\r\n$0\r\n\r\n", ""),
            "*3\r\n:-1\r\n:-2\r\n:-1\r\n");
  // RESP3 nil, and a value that looks like protocol.
  EXPECT_EQ(FieldTtlReply("*2\r\n_\r\n$5\r\n$-1\r\n\r\n", ""), "*2\r\n:-2\r\n:-1\r\n");
  const std::string wrongtype =
      "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
  EXPECT_EQ(FieldTtlReply(wrongtype, ""), wrongtype);
  EXPECT_EQ(FieldTtlReply(wrongtype, "-ERR x\r\n"), wrongtype);
  EXPECT_EQ(FieldTtlReply("*1\r\n$-1\r\n", "-ERR x\r\n"), "-ERR x\r\n");
  EXPECT_EQ(FieldTtlReply("+QUEUED\r\n", ""), "+QUEUED\r\n");
}

TEST(PretendServerTest, FillsEveryOptionForTheVersion) {
  const RespProxyOptions four = PretendServer(redis::Engine::kRedis, {4, 0});
  EXPECT_EQ(four.pretend_version, "4.0.14");
  EXPECT_TRUE(four.empty_info_everything);
  EXPECT_EQ(four.unknown_commands.count("XADD"), 1);
  EXPECT_EQ(four.unknown_commands.count("PEXPIRETIME"), 1);
  EXPECT_EQ(four.dump_payload_version, 8);
  EXPECT_EQ(four.restore_max_payload_version, 8);

  const RespProxyOptions six = PretendServer(redis::Engine::kRedis, {6, 2});
  EXPECT_FALSE(six.empty_info_everything);
  EXPECT_EQ(six.unknown_commands.count("GETDEL"), 0);
  EXPECT_EQ(six.unknown_commands.count("EXPIRETIME"), 1);
  EXPECT_EQ(six.dump_payload_version, 9);

  for (const auto& [engine, version, payload] :
       std::vector<std::tuple<redis::Engine, std::pair<int, int>, int>>{
           {redis::Engine::kRedis, {7, 2}, 11},
           {redis::Engine::kRedis, {7, 4}, 12},
           {redis::Engine::kRedis, {8, 0}, 12},
           {redis::Engine::kValkey, {8, 0}, 11},
           {redis::Engine::kValkey, {9, 0}, 80}}) {
    const RespProxyOptions newer = PretendServer(engine, version);
    EXPECT_TRUE(newer.unknown_commands.empty()) << version.first << "." << version.second;
    EXPECT_TRUE(newer.refused_arguments.empty());
    EXPECT_EQ(newer.dump_payload_version, payload);
    EXPECT_EQ(newer.restore_max_payload_version, payload);
    EXPECT_EQ(newer.emulate_hash_field_ttl_reads, payload >= 12);
  }
  EXPECT_FALSE(four.emulate_hash_field_ttl_reads);
  EXPECT_EQ(PretendServer(redis::Engine::kRedis, {7, 4}).pretend_version, "7.4.1");
  EXPECT_EQ(PretendServer(redis::Engine::kValkey, {9, 0}).pretend_valkey_version, "9.0.0");
  EXPECT_EQ(PretendServer(redis::Engine::kValkey, {8, 0}).pretend_valkey_version, "8.0.1");
}

// ---------------------------------------------------------------- against redis-server

class RespProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(RequireRedisServerBinary());
    ASSERT_OK_AND_ASSIGN(server_, RedisServer::Start());
  }

  std::unique_ptr<RespProxy> StartProxy(RespProxyOptions options) {
    options.upstream_port = server_->port();
    absl::StatusOr<std::unique_ptr<RespProxy>> proxy = RespProxy::Start(std::move(options));
    EXPECT_TRUE(proxy.ok()) << proxy.status();
    return proxy.ok() ? std::move(*proxy) : nullptr;
  }

  static redis::Endpoint ProxyEndpoint(const RedisServer& server, const RespProxy& proxy) {
    redis::Endpoint endpoint = server.endpoint();
    endpoint.host = proxy.host();
    endpoint.port = proxy.port();
    return endpoint;
  }

  absl::StatusOr<redis::Connection> Connect(const RespProxy& proxy,
                                            redis::ConnectOptions options = {}) {
    return redis::Connection::Open(ProxyEndpoint(*server_, proxy), options);
  }

  // `INFO args...` through `conn`; empty (with a test failure) on error.
  static std::string Info(redis::Connection& conn, std::vector<absl::string_view> args = {}) {
    args.insert(args.begin(), "INFO");
    absl::StatusOr<redis::Reply> reply = conn.Command(absl::MakeConstSpan(args));
    EXPECT_TRUE(reply.ok()) << reply.status();
    return reply.ok() ? std::string(reply->str()) : "";
  }

  // The error `argv` gets through `conn`, or "no error: ..." when it succeeds.
  static std::string ErrorOf(redis::Connection& conn, std::vector<absl::string_view> argv) {
    conn.Append(absl::MakeConstSpan(argv));
    if (absl::Status flushed = conn.Flush(); !flushed.ok()) return flushed.ToString();
    absl::StatusOr<redis::Reply> reply = conn.ReadReply();
    if (!reply.ok()) return reply.status().ToString();
    if (!reply->is_error()) return absl::StrCat("no error: ", reply->str());
    return std::string(reply->str());
  }

  // The payload of DUMP `key` through `conn`; empty (with a test failure) on error.
  static std::string Dump(redis::Connection& conn, absl::string_view key) {
    absl::StatusOr<redis::Reply> dump = conn.Command({"DUMP", key});
    EXPECT_TRUE(dump.ok()) << dump.status();
    return dump.ok() ? std::string(dump->str()) : "";
  }

  std::unique_ptr<RedisServer> server_;
};

constexpr absl::string_view kPayloadError = "ERR DUMP payload version or checksum are wrong";

TEST_F(RespProxyTest, InfoReportsThePretendedVersion) {
  RespProxyOptions options;
  options.pretend_version = "4.0.14";
  std::unique_ptr<RespProxy> proxy = StartProxy(options);
  ASSERT_NE(proxy, nullptr);
  ASSERT_OK_AND_ASSIGN(redis::Connection conn, Connect(*proxy));
  EXPECT_EQ(redis::InfoField(Info(conn), "redis_version"), "4.0.14");
  EXPECT_EQ(redis::InfoField(Info(conn, {"server"}), "redis_version"), "4.0.14");
  // Everything else is the real server's.
  EXPECT_EQ(redis::InfoField(Info(conn, {"server"}), "tcp_port"), absl::StrCat(server_->port()));

  ASSERT_OK_AND_ASSIGN(redis::Connection direct, server_->Connect());
  EXPECT_TRUE(absl::StartsWith(redis::InfoField(Info(direct), "redis_version"), "7."));
  EXPECT_EQ(proxy->commands_seen("INFO"), 3);
}

TEST_F(RespProxyTest, InfoAnswersAsValkey) {
  RespProxyOptions options;
  options.pretend_valkey_version = "8.0.1";
  std::unique_ptr<RespProxy> proxy = StartProxy(options);
  ASSERT_NE(proxy, nullptr);
  ASSERT_OK_AND_ASSIGN(redis::Connection conn, Connect(*proxy));
  const std::string info = Info(conn, {"server"});
  EXPECT_EQ(redis::InfoField(info, "server_name"), "valkey");
  EXPECT_EQ(redis::InfoField(info, "valkey_version"), "8.0.1");
  EXPECT_EQ(redis::InfoField(info, "redis_version"), "7.2.4");
}

TEST_F(RespProxyTest, InfoEverythingIsEmptyWhenAsked) {
  RespProxyOptions options;
  std::unique_ptr<RespProxy> plain = StartProxy(options);
  options.empty_info_everything = true;
  std::unique_ptr<RespProxy> old = StartProxy(options);
  ASSERT_NE(plain, nullptr);
  ASSERT_NE(old, nullptr);
  ASSERT_OK_AND_ASSIGN(redis::Connection plain_conn, Connect(*plain));
  ASSERT_OK_AND_ASSIGN(redis::Connection old_conn, Connect(*old));
  EXPECT_NE(redis::InfoField(Info(plain_conn, {"everything"}), "redis_version"), "");
  EXPECT_EQ(Info(old_conn, {"everything"}), "");
  EXPECT_NE(redis::InfoField(Info(old_conn, {"all"}), "redis_version"), "");
  EXPECT_NE(redis::InfoField(Info(old_conn), "redis_version"), "");
  EXPECT_NE(redis::InfoField(Info(old_conn, {"server"}), "redis_version"), "");
}

TEST_F(RespProxyTest, StripInfoKeyspaceRemovesDbLines) {
  ASSERT_OK_AND_ASSIGN(redis::Connection direct, server_->Connect());
  ASSERT_OK(direct.Command({"SET", "in-db0", "v"}).status());
  ASSERT_OK(direct.Select(3));
  ASSERT_OK(direct.Command({"SET", "in-db3", "v"}).status());
  EXPECT_NE(redis::InfoField(Info(direct, {"keyspace"}), "db3"), "");

  RespProxyOptions options;
  options.strip_info_keyspace = true;
  std::unique_ptr<RespProxy> proxy = StartProxy(options);
  ASSERT_NE(proxy, nullptr);
  ASSERT_OK_AND_ASSIGN(redis::Connection conn, Connect(*proxy));
  for (const std::vector<absl::string_view>& args : std::vector<std::vector<absl::string_view>>{
           {}, {"keyspace"}, {"everything"}, {"server", "keyspace"}}) {
    const std::string info = Info(conn, args);
    EXPECT_TRUE(absl::StrContains(info, "# Keyspace")) << info;
    EXPECT_FALSE(absl::StrContains(info, "\r\ndb")) << info;
  }
  ASSERT_OK_AND_ASSIGN(redis::Reply dbsize, conn.Command({"DBSIZE"}));
  EXPECT_EQ(dbsize.integer(), 1);  // Only INFO lies.
}

TEST_F(RespProxyTest, UnknownCommandIsRefusedWithoutForwarding) {
  RespProxyOptions options;
  options.unknown_commands = {"PEXPIRETIME"};
  std::unique_ptr<RespProxy> proxy = StartProxy(options);
  ASSERT_NE(proxy, nullptr);
  ASSERT_OK_AND_ASSIGN(redis::Connection conn, Connect(*proxy));
  ASSERT_OK(conn.Command({"SET", "k", "v", "PX", "100000"}).status());
  conn.Append({"pexpiretime", "k"});
  ASSERT_OK(conn.Flush());
  ASSERT_OK_AND_ASSIGN(redis::Reply refused, conn.ReadReply());
  ASSERT_TRUE(refused.is_error());
  EXPECT_EQ(refused.str(), "ERR unknown command 'pexpiretime', with args beginning with: 'k' ");
  ASSERT_OK_AND_ASSIGN(redis::Reply pttl, conn.Command({"PTTL", "k"}));
  EXPECT_GT(pttl.integer(), 0);
  EXPECT_EQ(proxy->commands_seen("PEXPIRETIME"), 1);
  EXPECT_EQ(proxy->commands_seen("PTTL"), 1);

  // The server never saw it.
  ASSERT_OK_AND_ASSIGN(redis::Connection direct, server_->Connect());
  const std::string stats = Info(direct, {"commandstats"});
  EXPECT_FALSE(absl::StrContains(stats, "cmdstat_pexpiretime")) << stats;
  EXPECT_TRUE(absl::StrContains(stats, "cmdstat_pttl")) << stats;
}

TEST_F(RespProxyTest, PipelineKeepsOrderAroundRefusedCommands) {
  RespProxyOptions options;
  options.unknown_commands = {"PEXPIRETIME"};
  options.pretend_version = "6.2.6";
  std::unique_ptr<RespProxy> proxy = StartProxy(options);
  ASSERT_NE(proxy, nullptr);
  ASSERT_OK_AND_ASSIGN(redis::Connection conn, Connect(*proxy));
  constexpr int kPairs = 5000;
  // Refused commands first (nothing ahead of them), in the middle, last (nothing after them),
  // and an INFO that must be rewritten in its own slot.
  std::vector<std::string> expected;
  conn.Append({"PEXPIRETIME", "first"});
  expected.push_back("error");
  for (int i = 0; i < kPairs; ++i) {
    const std::string key = absl::StrCat("key:", i);
    const std::string value = absl::StrCat("value:", i);
    conn.Append({"SET", key, value});
    conn.Append({"GET", key});
    expected.push_back("OK");
    expected.push_back(value);
    if (i == kPairs / 2) {
      conn.Append({"PEXPIRETIME", key});
      conn.Append({"INFO", "server"});
      expected.push_back("error");
      expected.push_back("6.2.6");
    }
  }
  conn.Append({"PEXPIRETIME", "last"});
  expected.push_back("error");
  ASSERT_OK(conn.Flush());

  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_OK_AND_ASSIGN(redis::Reply reply, conn.ReadReply());
    if (expected[i] == "error") {
      ASSERT_TRUE(reply.is_error()) << i << ": " << reply.str();
      EXPECT_TRUE(absl::StartsWith(reply.str(), "ERR unknown command 'PEXPIRETIME'"));
    } else if (expected[i] == "6.2.6") {
      EXPECT_EQ(redis::InfoField(reply.str(), "redis_version"), "6.2.6") << i;
    } else {
      ASSERT_EQ(reply.str(), expected[i]) << i;
    }
  }
  EXPECT_EQ(conn.pending(), 0);
  EXPECT_EQ(proxy->commands_seen("SET"), kPairs);
  EXPECT_EQ(proxy->commands_seen("GET"), kPairs);
  EXPECT_EQ(proxy->commands_seen("PEXPIRETIME"), 3);
  EXPECT_EQ(proxy->commands_seen("INFO"), 1);
  EXPECT_EQ(proxy->commands_seen("DEL"), 0);
}

TEST_F(RespProxyTest, LargeBinaryValueAndDumpRoundTrip) {
  std::unique_ptr<RespProxy> proxy = StartProxy({});
  ASSERT_NE(proxy, nullptr);
  ASSERT_OK_AND_ASSIGN(redis::Connection conn, Connect(*proxy));
  // Random bytes: DUMP cannot compress them, so its payload is as large as the value.
  std::mt19937_64 random(42);
  std::string value(5 << 20, '\0');
  for (char& c : value) c = static_cast<char>(random());
  value.replace(1000, 4, "\r\n$5", 4);  // Protocol bytes inside the payload.
  ASSERT_OK(conn.Command({"SET", "big", value}).status());
  ASSERT_OK_AND_ASSIGN(redis::Reply got, conn.Command({"GET", "big"}));
  ASSERT_EQ(got.str().size(), value.size());
  EXPECT_TRUE(got.str() == value);

  ASSERT_OK_AND_ASSIGN(redis::Reply dump, conn.Command({"DUMP", "big"}));
  ASSERT_GT(dump.str().size(), value.size() / 2);
  ASSERT_OK(conn.Command({"RESTORE", "copy", "0", dump.str()}).status());
  ASSERT_OK_AND_ASSIGN(redis::Reply copy, conn.Command({"GET", "copy"}));
  EXPECT_TRUE(copy.str() == value);
}

TEST_F(RespProxyTest, LongPipelineOfLargeValuesDoesNotDeadlock) {
  // 16 MB each way, far beyond the socket buffers: the client writes everything before it
  // reads anything, so a proxy that blocked on the client while forwarding would hang here.
  std::unique_ptr<RespProxy> proxy = StartProxy({});
  ASSERT_NE(proxy, nullptr);
  ASSERT_OK_AND_ASSIGN(redis::Connection conn, Connect(*proxy));
  constexpr int kPairs = 64;
  const std::string value(256 << 10, 'v');
  for (int i = 0; i < kPairs; ++i) {
    conn.Append({"SET", absl::StrCat("large:", i), value});
    conn.Append({"GET", absl::StrCat("large:", i)});
  }
  ASSERT_OK(conn.Flush());
  for (int i = 0; i < kPairs; ++i) {
    ASSERT_OK_AND_ASSIGN(redis::Reply set, conn.ReadReply());
    EXPECT_EQ(set.str(), "OK");
    ASSERT_OK_AND_ASSIGN(redis::Reply get, conn.ReadReply());
    EXPECT_EQ(get.str().size(), value.size()) << i;
  }
}

TEST_F(RespProxyTest, ManyConcurrentClients) {
  std::unique_ptr<RespProxy> proxy = StartProxy({});
  ASSERT_NE(proxy, nullptr);
  constexpr int kClients = 16;
  constexpr int kCommands = 500;
  std::vector<std::string> failures(kClients);
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      absl::StatusOr<redis::Connection> conn = Connect(*proxy);
      if (!conn.ok()) {
        failures[c] = conn.status().ToString();
        return;
      }
      for (int i = 0; i < kCommands; ++i) conn->Append({"INCR", absl::StrCat("counter:", c)});
      if (absl::Status flushed = conn->Flush(); !flushed.ok()) failures[c] = flushed.ToString();
      for (int i = 1; i <= kCommands && failures[c].empty(); ++i) {
        absl::StatusOr<redis::Reply> reply = conn->ReadReply();
        if (!reply.ok() || reply->integer() != i) failures[c] = absl::StrCat("reply ", i);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int c = 0; c < kClients; ++c) EXPECT_EQ(failures[c], "") << "client " << c;
  EXPECT_EQ(proxy->commands_seen("INCR"), kClients * kCommands);
}

// ---------------------------------------------------------------- payload versions

// The honesty test: a payload read through a proxy that pretends a newer source is refused by
// the real 7.0 (not proxied) exactly as a real newer server's payload would be, and one that
// pretends an older source is read.
TEST_F(RespProxyTest, DumpFromAPretendedSourceIsJudgedByTheRealServer) {
  ASSERT_OK_AND_ASSIGN(redis::Connection direct, server_->Connect());
  ASSERT_OK(direct.Command({"HSET", "h", "f1", "v1", "f2", "v2"}).status());
  for (const auto& [version, read] : std::vector<std::pair<int, bool>>{
           {11, false}, {12, false}, {80, false}, {9, true}, {8, true}}) {
    RespProxyOptions options;
    options.dump_payload_version = version;
    std::unique_ptr<RespProxy> proxy = StartProxy(options);
    ASSERT_NE(proxy, nullptr);
    ASSERT_OK_AND_ASSIGN(redis::Connection conn, Connect(*proxy));
    const std::string payload = Dump(conn, "h");
    EXPECT_EQ(redis::PayloadVersion(payload), version);
    EXPECT_TRUE(redis::PayloadChecksumValid(payload));
    const std::string copy = absl::StrCat("copy:", version);
    if (read) {
      ASSERT_OK(direct.Command({"RESTORE", copy, "0", payload}).status());
      ASSERT_OK_AND_ASSIGN(redis::Reply field, direct.Command({"HGET", copy, "f2"}));
      EXPECT_EQ(field.str(), "v2");
    } else {
      EXPECT_EQ(ErrorOf(direct, {"RESTORE", copy, "0", payload}), kPayloadError) << version;
    }
    ASSERT_OK_AND_ASSIGN(redis::Reply missing, conn.Command({"DUMP", "missing"}));
    EXPECT_TRUE(missing.is_nil());
  }
}

TEST_F(RespProxyTest, OlderTargetRefusesNewerPayloadsInTheRealServersOrder) {
  ASSERT_OK_AND_ASSIGN(redis::Connection direct, server_->Connect());
  ASSERT_OK(direct.Command({"SET", "s", "value"}).status());
  const std::string real = Dump(direct, "s");
  ASSERT_EQ(redis::PayloadVersion(real), 10);
  RespProxyOptions options;
  options.restore_max_payload_version = 9;
  std::unique_ptr<RespProxy> proxy = StartProxy(options);
  ASSERT_NE(proxy, nullptr);
  ASSERT_OK_AND_ASSIGN(redis::Connection conn, Connect(*proxy));
  EXPECT_EQ(ErrorOf(conn, {"RESTORE", "a", "0", real}), kPayloadError);
  EXPECT_EQ(ErrorOf(conn, {"RESTORE", "a", "0", real, "REPLACE", "ABSTTL"}), kPayloadError);
  ASSERT_OK_AND_ASSIGN(redis::Reply exists, direct.Command({"EXISTS", "a"}));
  EXPECT_EQ(exists.integer(), 0);
  // A real server checks for an existing key before it reads the payload.
  EXPECT_TRUE(absl::StartsWith(ErrorOf(conn, {"RESTORE", "s", "0", real}), "BUSYKEY"));
  ASSERT_OK(conn.Command({"RESTORE", "a", "0", redis::WithPayloadVersion(real, 9)}).status());
  ASSERT_OK_AND_ASSIGN(redis::Reply value, direct.Command({"GET", "a"}));
  EXPECT_EQ(value.str(), "value");
}

TEST_F(RespProxyTest, NewerTargetReadsItsOwnPayloads) {
  ASSERT_OK_AND_ASSIGN(redis::Connection direct, server_->Connect());
  ASSERT_OK(direct.Command({"SET", "s", "value"}).status());
  const std::string real = Dump(direct, "s");
  RespProxyOptions options;
  options.restore_max_payload_version = 12;
  std::unique_ptr<RespProxy> redis74 = StartProxy(options);
  options.restore_max_payload_version = 80;
  options.pretend_valkey_version = "9.0.0";
  std::unique_ptr<RespProxy> valkey9 = StartProxy(options);
  ASSERT_NE(redis74, nullptr);
  ASSERT_NE(valkey9, nullptr);
  ASSERT_OK_AND_ASSIGN(redis::Connection conn74, Connect(*redis74));
  ASSERT_OK_AND_ASSIGN(redis::Connection conn9, Connect(*valkey9));
  const std::string v12 = redis::WithPayloadVersion(real, 12);
  EXPECT_EQ(ErrorOf(direct, {"RESTORE", "x", "0", v12}), kPayloadError);
  ASSERT_OK(conn74.Command({"RESTORE", "from74", "0", v12}).status());
  EXPECT_EQ(ErrorOf(conn74, {"RESTORE", "x", "0", redis::WithPayloadVersion(real, 13)}),
            kPayloadError);
  // Valkey 9 reads its own and Redis <= 7.2's, not Redis 7.4's.
  EXPECT_EQ(ErrorOf(conn9, {"RESTORE", "x", "0", v12}), kPayloadError);
  ASSERT_OK(
      conn9.Command({"RESTORE", "from80", "0", redis::WithPayloadVersion(real, 80)}).status());
  ASSERT_OK(
      conn9.Command({"RESTORE", "from11", "0", redis::WithPayloadVersion(real, 11)}).status());
  for (absl::string_view key : {"from74", "from80", "from11"}) {
    ASSERT_OK_AND_ASSIGN(redis::Reply value, direct.Command({"GET", key}));
    EXPECT_EQ(value.str(), "value") << key;
  }
}

// ---------------------------------------------------------------- presets

TEST_F(RespProxyTest, RedisFourPresetRefusesWhatFourLacks) {
  std::unique_ptr<RespProxy> proxy = StartProxy(PretendServer(redis::Engine::kRedis, {4, 0}));
  ASSERT_NE(proxy, nullptr);
  ASSERT_OK_AND_ASSIGN(redis::Connection conn, Connect(*proxy));
  EXPECT_EQ(redis::InfoField(Info(conn, {"server"}), "redis_version"), "4.0.14");
  EXPECT_EQ(Info(conn, {"everything"}), "");
  ASSERT_OK(conn.Command({"SET", "k", "v"}).status());
  EXPECT_EQ(ErrorOf(conn, {"SCAN", "0", "TYPE", "string"}), "ERR syntax error");
  ASSERT_OK(conn.Command({"SCAN", "0", "COUNT", "10"}).status());
  const std::string payload = Dump(conn, "k");
  EXPECT_EQ(redis::PayloadVersion(payload), 8);
  EXPECT_EQ(ErrorOf(conn, {"RESTORE", "k2", "0", payload, "REPLACE", "ABSTTL"}),
            "ERR syntax error");
  ASSERT_OK(conn.Command({"RESTORE", "k2", "0", payload, "REPLACE"}).status());
  EXPECT_EQ(ErrorOf(conn, {"RESTORE", "k3", "0", redis::WithPayloadVersion(payload, 9)}),
            kPayloadError);
  EXPECT_EQ(ErrorOf(conn, {"XADD", "s", "*", "f", "v"}),
            "ERR unknown command 'XADD', with args beginning with: 's' '*' 'f' 'v' ");
  EXPECT_TRUE(absl::StartsWith(ErrorOf(conn, {"PEXPIRETIME", "k"}), "ERR unknown command"));
  // The server saw only what it was meant to.
  ASSERT_OK_AND_ASSIGN(redis::Connection direct, server_->Connect());
  const std::string stats = Info(direct, {"commandstats"});
  EXPECT_FALSE(absl::StrContains(stats, "cmdstat_xadd")) << stats;
  EXPECT_FALSE(absl::StrContains(stats, "cmdstat_pexpiretime")) << stats;
  EXPECT_TRUE(absl::StrContains(stats, "cmdstat_scan:calls=1,")) << stats;
}

TEST_F(RespProxyTest, RedisSixTwoPresetKnowsSixTwo) {
  std::unique_ptr<RespProxy> proxy = StartProxy(PretendServer(redis::Engine::kRedis, {6, 2}));
  ASSERT_NE(proxy, nullptr);
  ASSERT_OK_AND_ASSIGN(redis::Connection conn, Connect(*proxy));
  EXPECT_EQ(redis::InfoField(Info(conn, {"everything"}), "redis_version"), "6.2.14");
  EXPECT_TRUE(absl::StartsWith(ErrorOf(conn, {"PEXPIRETIME", "k"}), "ERR unknown command"));
  const std::string at = absl::StrCat(absl::ToUnixMillis(absl::Now()) + 100000);
  ASSERT_OK(conn.Command({"SET", "k", "v", "PXAT", at}).status());
  ASSERT_OK_AND_ASSIGN(redis::Reply pttl, conn.Command({"PTTL", "k"}));
  EXPECT_GT(pttl.integer(), 0);
  EXPECT_EQ(redis::PayloadVersion(Dump(conn, "k")), 9);
  ASSERT_OK(conn.Command({"XADD", "s", "1-0", "f", "v"}).status());
  EXPECT_EQ(ErrorOf(conn, {"XSETID", "s", "5-0", "ENTRIESADDED", "5"}),
            "ERR wrong number of arguments for 'xsetid' command");
  ASSERT_OK(conn.Command({"XSETID", "s", "5-0"}).status());
  ASSERT_OK(conn.Command({"XGROUP", "CREATE", "s", "g", "0"}).status());
  EXPECT_EQ(ErrorOf(conn, {"XGROUP", "SETID", "s", "g", "0", "ENTRIESREAD", "1"}),
            "ERR Unknown subcommand or wrong number of arguments for 'SETID'. Try XGROUP HELP.");
  ASSERT_OK(conn.Command({"XGROUP", "CREATECONSUMER", "s", "g", "c"}).status());
  ASSERT_OK(conn.Command({"XRANGE", "s", "(0-1", "+"}).status());
  ASSERT_OK(conn.Command({"XPENDING", "s", "g", "IDLE", "10", "-", "+", "10"}).status());
  EXPECT_EQ(ErrorOf(conn, {"CLUSTER", "SHARDS"}),
            "ERR Unknown subcommand or wrong number of arguments for 'SHARDS'. Try CLUSTER HELP.");
}

TEST_F(RespProxyTest, RedisFiveAndSixPresetsRefuseNewerStreamOptions) {
  std::unique_ptr<RespProxy> five = StartProxy(PretendServer(redis::Engine::kRedis, {5, 0}));
  std::unique_ptr<RespProxy> six = StartProxy(PretendServer(redis::Engine::kRedis, {6, 0}));
  ASSERT_NE(five, nullptr);
  ASSERT_NE(six, nullptr);
  ASSERT_OK_AND_ASSIGN(redis::Connection conn5, Connect(*five));
  ASSERT_OK_AND_ASSIGN(redis::Connection conn6, Connect(*six));
  ASSERT_OK(conn6.Command({"XADD", "s", "1-0", "f", "v"}).status());
  ASSERT_OK(conn6.Command({"XGROUP", "CREATE", "s", "g", "0"}).status());
  EXPECT_EQ(ErrorOf(conn6, {"XGROUP", "createconsumer", "s", "g", "c"}),
            "ERR Unknown subcommand or wrong number of arguments for 'createconsumer'. Try "
            "XGROUP HELP.");
  EXPECT_EQ(ErrorOf(conn6, {"XPENDING", "s", "g", "IDLE", "10", "-", "+", "10"}),
            "ERR syntax error");
  const std::string bad_id = "ERR Invalid stream ID specified as stream command argument";
  EXPECT_EQ(ErrorOf(conn6, {"XRANGE", "s", "(0-1", "+"}), bad_id);
  EXPECT_EQ(ErrorOf(conn6, {"XPENDING", "s", "g", "-", "(9-0", "10"}), bad_id);
  EXPECT_EQ(ErrorOf(conn6, {"SET", "k", "v", "GET"}), "ERR syntax error");
  ASSERT_OK(conn6.Command({"SET", "k", "v", "KEEPTTL"}).status());
  ASSERT_OK(conn6.Command({"XINFO", "STREAM", "s", "FULL"}).status());
  ASSERT_OK(conn6.Command({"SCAN", "0", "TYPE", "stream"}).status());

  EXPECT_EQ(ErrorOf(conn5, {"XINFO", "STREAM", "s", "FULL"}),
            "ERR Unknown subcommand or wrong number of arguments for 'STREAM'. Try XINFO HELP.");
  EXPECT_EQ(ErrorOf(conn5, {"SET", "k", "v", "KEEPTTL"}), "ERR syntax error");
  EXPECT_EQ(ErrorOf(conn5, {"SCAN", "0", "TYPE", "stream"}), "ERR syntax error");
  EXPECT_TRUE(absl::StartsWith(ErrorOf(conn5, {"HELLO", "3"}), "ERR unknown command 'HELLO'"));
  ASSERT_OK(conn5.Command({"RESTORE", "k2", "0", Dump(conn5, "k"), "ABSTTL"}).status());
}

// Newer presets change INFO and payloads only; a payload goes from one to another as it
// would between the real servers.
TEST_F(RespProxyTest, NewerPresetsWriteAndReadTheirPayloads) {
  std::unique_ptr<RespProxy> redis74 = StartProxy(PretendServer(redis::Engine::kRedis, {7, 4}));
  std::unique_ptr<RespProxy> redis80 = StartProxy(PretendServer(redis::Engine::kRedis, {8, 0}));
  std::unique_ptr<RespProxy> redis62 = StartProxy(PretendServer(redis::Engine::kRedis, {6, 2}));
  std::unique_ptr<RespProxy> valkey9 = StartProxy(PretendServer(redis::Engine::kValkey, {9, 0}));
  ASSERT_TRUE(redis74 && redis80 && redis62 && valkey9);
  ASSERT_OK_AND_ASSIGN(redis::Connection source, Connect(*redis74));
  ASSERT_OK_AND_ASSIGN(redis::Connection to80, Connect(*redis80));
  ASSERT_OK_AND_ASSIGN(redis::Connection to62, Connect(*redis62));
  ASSERT_OK_AND_ASSIGN(redis::Connection to9, Connect(*valkey9));
  EXPECT_EQ(redis::InfoField(Info(source), "redis_version"), "7.4.1");
  const std::string info9 = Info(to9, {"server"});
  EXPECT_EQ(redis::InfoField(info9, "valkey_version"), "9.0.0");
  EXPECT_EQ(redis::InfoField(info9, "redis_version"), "7.2.4");

  ASSERT_OK(source.Command({"SET", "k", "v"}).status());
  const std::string payload = Dump(source, "k");
  EXPECT_EQ(redis::PayloadVersion(payload), 12);
  ASSERT_OK(to80.Command({"RESTORE", "to80", "0", payload}).status());
  EXPECT_EQ(ErrorOf(to62, {"RESTORE", "to62", "0", payload}), kPayloadError);
  EXPECT_EQ(ErrorOf(to9, {"RESTORE", "to9", "0", payload}), kPayloadError);
  EXPECT_EQ(redis::PayloadVersion(Dump(to9, "to80")), 80);  // A probe DUMP on the target.
  // What 7.4 added, but its hash field TTL reads, reaches 7.0, which does not know it: a test
  // would see ferry send it.
  EXPECT_TRUE(absl::StartsWith(ErrorOf(source, {"HPEXPIRE", "h", "1000", "FIELDS", "1", "f"}),
                               "ERR unknown command"));
  EXPECT_EQ(redis74->commands_seen("HPEXPIRE"), 1);
}

// A field TTL read's reply as text: "-1 -2" for its integers, else the error or "not ...".
std::string FieldTtls(redis::Connection& conn, std::vector<absl::string_view> argv) {
  conn.Append(absl::MakeConstSpan(argv));
  if (absl::Status flushed = conn.Flush(); !flushed.ok()) return flushed.ToString();
  absl::StatusOr<redis::Reply> reply = conn.ReadReply();
  if (!reply.ok()) return reply.status().ToString();
  if (reply->is_error()) return std::string(reply->str());
  if (!reply->is_array()) return "not an array";
  std::string out;
  for (size_t i = 0; i < reply->size(); ++i) {
    const redis::ReplyView element = reply->element(i);
    absl::StrAppend(&out, i > 0 ? " " : "",
                    element.is_integer() ? absl::StrCat(element.integer()) : "not an integer");
  }
  return out;
}

constexpr absl::string_view kWrongType =
    "WRONGTYPE Operation against a key holding the wrong kind of value";

TEST_F(RespProxyTest, HashFieldTtlReadsAnswerAsSevenFourWould) {
  ASSERT_OK_AND_ASSIGN(redis::Connection direct, server_->Connect());
  ASSERT_OK(direct.Command({"HSET", "h", "f1", "v1", "f2", ""}).status());
  ASSERT_OK(direct.Command({"SET", "s", "v"}).status());
  std::unique_ptr<RespProxy> redis74 = StartProxy(PretendServer(redis::Engine::kRedis, {7, 4}));
  std::unique_ptr<RespProxy> valkey9 = StartProxy(PretendServer(redis::Engine::kValkey, {9, 0}));
  ASSERT_TRUE(redis74 && valkey9);
  ASSERT_OK_AND_ASSIGN(redis::Connection conn, Connect(*redis74));
  ASSERT_OK_AND_ASSIGN(redis::Connection conn9, Connect(*valkey9));
  for (absl::string_view command : {"HPEXPIRETIME", "hpttl", "HTTL", "HExpireTime"}) {
    EXPECT_EQ(FieldTtls(conn, {command, "h", "FIELDS", "3", "f1", "missing", "f2"}), "-1 -2 -1");
    EXPECT_EQ(FieldTtls(conn, {command, "h", "fields", "1", "f1"}), "-1");
    EXPECT_EQ(FieldTtls(conn, {command, "no-key", "FIELDS", "2", "f1", "f2"}), "-2 -2");
    EXPECT_EQ(FieldTtls(conn, {command, "s", "FIELDS", "1", "f1"}), kWrongType);
  }
  EXPECT_EQ(FieldTtls(conn9, {"HPEXPIRETIME", "h", "FIELDS", "2", "f2", "x"}), "-1 -2");
  EXPECT_EQ(redis74->commands_seen("HPEXPIRETIME"), 4);
  // The real server answered HMGETs only.
  const std::string stats = Info(direct, {"commandstats"});
  EXPECT_TRUE(absl::StrContains(stats, "cmdstat_hmget:calls=17,")) << stats;
  EXPECT_FALSE(absl::StrContains(stats, "cmdstat_hpexpiretime")) << stats;
  EXPECT_FALSE(absl::StrContains(stats, "unknown")) << stats;
  // Below 7.4 the read reaches 7.0, which does not know it.
  std::unique_ptr<RespProxy> redis72 = StartProxy(PretendServer(redis::Engine::kRedis, {7, 2}));
  ASSERT_NE(redis72, nullptr);
  ASSERT_OK_AND_ASSIGN(redis::Connection conn72, Connect(*redis72));
  EXPECT_TRUE(absl::StartsWith(FieldTtls(conn72, {"HPEXPIRETIME", "h", "FIELDS", "1", "f1"}),
                               "ERR unknown command"));
}

TEST_F(RespProxyTest, HashFieldTtlReadsRefuseBadArgumentsAsSevenFour) {
  ASSERT_OK_AND_ASSIGN(redis::Connection direct, server_->Connect());
  ASSERT_OK(direct.Command({"HSET", "h", "f1", "v1"}).status());
  ASSERT_OK(direct.Command({"SET", "s", "v"}).status());
  std::unique_ptr<RespProxy> proxy = StartProxy(PretendServer(redis::Engine::kRedis, {7, 4}));
  ASSERT_NE(proxy, nullptr);
  ASSERT_OK_AND_ASSIGN(redis::Connection conn, Connect(*proxy));
  const std::string missing =
      "ERR Mandatory argument FIELDS is missing or not at the right position";
  const std::string count = "ERR Number of fields must be a positive integer";
  const std::string mismatch = "ERR The `numfields` parameter must match the number of arguments";
  EXPECT_EQ(FieldTtls(conn, {"HPEXPIRETIME", "h", "FIELDS", "1"}),
            "ERR wrong number of arguments for 'hpexpiretime' command");
  EXPECT_EQ(FieldTtls(conn, {"hpttl", "h"}), "ERR wrong number of arguments for 'hpttl' command");
  EXPECT_EQ(FieldTtls(conn, {"HPEXPIRETIME", "h", "FIELD", "1", "f1"}), missing);
  EXPECT_EQ(FieldTtls(conn, {"HPEXPIRETIME", "h", "1", "f1", "f2"}), missing);
  for (absl::string_view bad : {"0", "-1", "x", "01", "+1", "99999999999999999999"}) {
    EXPECT_EQ(FieldTtls(conn, {"HPEXPIRETIME", "h", "FIELDS", bad, "f1"}), count) << bad;
  }
  EXPECT_EQ(FieldTtls(conn, {"HTTL", "h", "FIELDS", "2", "f1"}), mismatch);
  EXPECT_EQ(FieldTtls(conn, {"HTTL", "h", "FIELDS", "1", "f1", "f2"}), mismatch);
  EXPECT_EQ(FieldTtls(conn, {"HTTL", "no-key", "FIELDS", "3", "f1"}), mismatch);
  // 7.4 checks the type before the arguments.
  EXPECT_EQ(FieldTtls(conn, {"HPEXPIRETIME", "s", "FIELD", "0", "f1", "f2"}), kWrongType);
}

TEST_F(RespProxyTest, PipelineKeepsOrderAroundHashFieldTtlReads) {
  std::unique_ptr<RespProxy> proxy = StartProxy(PretendServer(redis::Engine::kRedis, {7, 4}));
  ASSERT_NE(proxy, nullptr);
  ASSERT_OK_AND_ASSIGN(redis::Connection conn, Connect(*proxy));
  constexpr int kRounds = 2000;
  // Every kind of reply in turn: converted, answered by the proxy, refused after the type
  // check, an error passed through, and plain commands around them.
  for (int i = 0; i < kRounds; ++i) {
    const std::string key = absl::StrCat("hash:", i);
    conn.Append({"HSET", key, "f", absl::StrCat(i)});
    conn.Append({"HPEXPIRETIME", key, "FIELDS", "2", "f", "g"});
    conn.Append({"HPTTL", key, "FIELDS", "1"});
    conn.Append({"GET", key});
    conn.Append({"HTTL", key, "FIELDS", "0", "f"});
    conn.Append({"HGET", key, "f"});
  }
  ASSERT_OK(conn.Flush());
  for (int i = 0; i < kRounds; ++i) {
    ASSERT_OK_AND_ASSIGN(redis::Reply hset, conn.ReadReply());
    ASSERT_EQ(hset.integer(), 1) << i;
    ASSERT_OK_AND_ASSIGN(redis::Reply ttls, conn.ReadReply());
    ASSERT_TRUE(ttls.is_array() && ttls.size() == 2) << i << ": " << ttls.str();
    EXPECT_EQ(ttls.element(0).integer(), -1);
    EXPECT_EQ(ttls.element(1).integer(), -2);
    ASSERT_OK_AND_ASSIGN(redis::Reply arity, conn.ReadReply());
    ASSERT_EQ(arity.str(), "ERR wrong number of arguments for 'hpttl' command") << i;
    ASSERT_OK_AND_ASSIGN(redis::Reply get, conn.ReadReply());
    ASSERT_EQ(get.str(), kWrongType) << i;
    ASSERT_OK_AND_ASSIGN(redis::Reply count, conn.ReadReply());
    ASSERT_EQ(count.str(), "ERR Number of fields must be a positive integer") << i;
    ASSERT_OK_AND_ASSIGN(redis::Reply hget, conn.ReadReply());
    ASSERT_EQ(hget.str(), absl::StrCat(i)) << i;
  }
  EXPECT_EQ(conn.pending(), 0);
}

// connected_clients of the real server, counting the asking connection.
int ConnectedClients(redis::Connection& direct) {
  absl::StatusOr<redis::Reply> info = direct.Command({"INFO", "clients"});
  int clients = -1;
  if (info.ok())
    (void)absl::SimpleAtoi(redis::InfoField(info->str(), "connected_clients"), &clients);
  return clients;
}

TEST_F(RespProxyTest, ClosedClientClosesItsUpstream) {
  std::unique_ptr<RespProxy> proxy = StartProxy({});
  ASSERT_NE(proxy, nullptr);
  ASSERT_OK_AND_ASSIGN(redis::Connection direct, server_->Connect());
  {
    ASSERT_OK_AND_ASSIGN(redis::Connection conn, Connect(*proxy));
    ASSERT_OK(conn.Command({"PING"}).status());
    EXPECT_EQ(ConnectedClients(direct), 2);
  }
  ASSERT_OK(WaitFor([&] { return ConnectedClients(direct) == 1; }, absl::Seconds(10)));
}

TEST_F(RespProxyTest, StoppedUpstreamMakesClientsWaitAndKilledOneClosesThem) {
  RespProxyOptions options;
  options.unknown_commands = {"PEXPIRETIME"};
  std::unique_ptr<RespProxy> proxy = StartProxy(options);
  ASSERT_NE(proxy, nullptr);
  ASSERT_OK_AND_ASSIGN(redis::Connection conn, Connect(*proxy));
  ASSERT_OK(conn.Command({"PING"}).status());

  redis::ConnectOptions impatient;
  impatient.io_timeout = absl::Milliseconds(300);
  // Opened (their handshake answered) while the server runs.
  ASSERT_OK_AND_ASSIGN(redis::Connection waiting, Connect(*proxy, impatient));
  ASSERT_OK_AND_ASSIGN(redis::Connection refused, Connect(*proxy, impatient));
  ASSERT_EQ(kill(server_->pid(), SIGSTOP), 0);
  EXPECT_EQ(waiting.Command({"PING"}).status().code(), absl::StatusCode::kDeadlineExceeded);
  // A connection opened now fails its handshake within the timeout.
  EXPECT_EQ(Connect(*proxy, impatient).status().code(), absl::StatusCode::kDeadlineExceeded);
  // A refused command with nothing ahead of it does not wait for the stopped server.
  const absl::Status refusal = refused.Command({"PEXPIRETIME", "k"}).status();
  EXPECT_TRUE(absl::StrContains(refusal.message(), "unknown command")) << refusal;
  conn.Append({"PING"});
  ASSERT_OK(conn.Flush());
  ASSERT_EQ(kill(server_->pid(), SIGCONT), 0);
  ASSERT_OK_AND_ASSIGN(redis::Reply pong, conn.ReadReply());  // It waited, then got it.
  EXPECT_EQ(pong.str(), "PONG");

  server_->Kill();
  EXPECT_FALSE(conn.Command({"PING"}).ok());
  // New clients of a dead server are closed, and the proxy lives on.
  absl::StatusOr<redis::Connection> late = Connect(*proxy);
  EXPECT_TRUE(!late.ok() || !late->Command({"PING"}).ok());
  EXPECT_EQ(proxy->commands_seen("PEXPIRETIME"), 1);
}

}  // namespace
}  // namespace ferry::testing
