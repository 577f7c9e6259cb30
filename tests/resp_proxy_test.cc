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
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/redis/connection.h"
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
  EXPECT_EQ(RewriteInfoReply(reply, {"server", "all"}, options), "$0\r\n\r\n");
  EXPECT_NE(RewriteInfoReply(reply, {"server"}, options), "$0\r\n\r\n");
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

  std::unique_ptr<RedisServer> server_;
};

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
  EXPECT_EQ(Info(old_conn, {"all"}), "");
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

  ASSERT_EQ(kill(server_->pid(), SIGSTOP), 0);
  redis::ConnectOptions impatient;
  impatient.io_timeout = absl::Milliseconds(300);
  ASSERT_OK_AND_ASSIGN(redis::Connection waiting, Connect(*proxy, impatient));
  EXPECT_EQ(waiting.Command({"PING"}).status().code(), absl::StatusCode::kDeadlineExceeded);
  // A refused command with nothing ahead of it does not wait for the stopped server.
  ASSERT_OK_AND_ASSIGN(redis::Connection refused, Connect(*proxy, impatient));
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
