// `ferry migrate` with ElastiCache IAM authentication (`?iam=1`) on both sides, against real
// TLS redis-servers whose ACL user `ferry-iam` has, as its only passwords, the tokens of the
// last few seconds: a thread signs them with the same library and rotates them twice a second,
// so a token stops working seconds after it was signed. A MONITOR of each server records every
// command with its connection, and the test checks that no ferry connection ran a command more
// than the re-AUTH interval after its last AUTH: it fails if ferry does not re-AUTH, or
// re-AUTHs with an old token (refused: counted in `failed_calls`).

#include <atomic>
#include <cstdlib>
#include <map>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/aws/elasticache_token.h"
#include "common/redis/connection.h"
#include "common/testing/compare.h"
#include "common/testing/fake_imds.h"
#include "common/testing/redis_helpers.h"
#include "common/testing/redis_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/ferry_cli.h"
#include "tests/fleet.h"

namespace ferry::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kUser[] = "ferry-iam";
constexpr char kRegion[] = "us-east-1";
constexpr absl::Duration kReauth = absl::Seconds(2);
constexpr char kMonitorEnd[] = "iam-test-monitor-end";

aws::Credentials RoleCredentials() {
  aws::Credentials out;
  out.access_key_id = "ASIAFERRYTESTROLE";
  out.secret_access_key = "role-secret-key/Do+Not+Print";
  out.session_token = "role-session-token-do-not-print";
  out.expiration = absl::Now() + absl::Hours(6);
  return out;
}

// One TLS server whose `ferry-iam` user logs in only with recent IAM tokens.
struct IamServer {
  std::unique_ptr<RedisServer> server;
  aws::ElastiCacheTokenRequest request;

  std::string Uri() const {
    return absl::StrCat(WithUser(server->uri(), kUser), "?iam=1&cluster=", request.cache_name,
                        "&region=", kRegion, "&reauth=", absl::FormatDuration(kReauth));
  }
};

std::unique_ptr<IamServer> StartIamServer(const std::string& cluster, bool tls = true) {
  RedisServerOptions options;
  options.tls = tls;
  options.acl_lines = {absl::StrCat("user ", kUser, " on ~* &* +@all")};  // No password yet.
  auto out = std::make_unique<IamServer>();
  out->server = StartServer(options);
  if (out->server == nullptr) return nullptr;
  out->request.user = kUser;
  out->request.cache_name = cluster;
  out->request.region = kRegion;
  return out;
}

// Replaces the user's passwords by the tokens signed in the seconds around now.
absl::Status RotatePasswords(redis::Connection& admin, const IamServer& server,
                             const aws::Credentials& credentials) {
  std::vector<std::string> argv = {"ACL", "SETUSER", kUser, "resetpass"};
  const absl::Time now = absl::Now();
  for (int second = -3; second <= 3; ++second) {
    argv.push_back(
        ">" + aws::ElastiCacheAuthToken(server.request, credentials, now + absl::Seconds(second)));
  }
  std::vector<absl::string_view> args(argv.begin(), argv.end());
  return admin.Command(args).status();
}

// One MONITOR line: `1796150335.931899 [0 127.0.0.1:49210] "AUTH" "(redacted)"`.
struct MonitorLine {
  double time = 0;
  std::string client;
  std::string command;
};

std::optional<MonitorLine> ParseMonitorLine(absl::string_view line) {
  const size_t open = line.find(" [");
  const size_t close = line.find("] \"");
  if (open == absl::string_view::npos || close == absl::string_view::npos) return std::nullopt;
  MonitorLine out;
  if (!absl::SimpleAtod(line.substr(0, open), &out.time)) return std::nullopt;
  absl::string_view inside = line.substr(open + 2, close - open - 2);
  out.client = std::string(inside.substr(inside.find(' ') + 1));
  absl::string_view rest = line.substr(close + 3);
  out.command = absl::AsciiStrToUpper(rest.substr(0, rest.find('"')));
  return out;
}

// Reads a server's MONITOR stream on its own thread until the end marker.
class Monitor {
 public:
  explicit Monitor(const RedisServer& server) : connection_(Connect(server)) {
    EXPECT_TRUE(connection_.Command({"MONITOR"}).ok());
    thread_ = std::thread([this] {
      for (;;) {
        absl::StatusOr<redis::Reply> reply = connection_.ReadReply();
        if (!reply.ok()) return;
        const std::string line(reply->str());
        if (line.find(kMonitorEnd) != std::string::npos) return;
        if (std::optional<MonitorLine> parsed = ParseMonitorLine(line)) lines_.push_back(*parsed);
      }
    });
  }
  // Ends the stream (an ECHO of the end marker through `admin`) and returns what it saw.
  std::vector<MonitorLine> Finish(redis::Connection& admin) {
    EXPECT_TRUE(admin.Command({"ECHO", kMonitorEnd}).ok());
    thread_.join();
    return lines_;
  }

 private:
  redis::Connection connection_;
  std::vector<MonitorLine> lines_;  // Written by thread_ only, read after join.
  std::thread thread_;
};

struct ReauthReport {
  int ferry_connections = 0;
  int most_auths_on_one_connection = 0;
  double longest_gap_seconds = 0;  // Between a command and its connection's last AUTH.
  std::string worst_client;
};

// Ferry's connections are the ones that AUTH (the test's own use the passwordless default user).
ReauthReport CheckReauth(const std::vector<MonitorLine>& lines) {
  std::map<std::string, double> last_auth;
  std::map<std::string, int> auths;
  ReauthReport report;
  for (const MonitorLine& line : lines) {
    if (line.command == "AUTH") {
      last_auth[line.client] = line.time;
      ++auths[line.client];
      continue;
    }
    auto it = last_auth.find(line.client);
    if (it == last_auth.end()) continue;
    if (line.time - it->second > report.longest_gap_seconds) {
      report.longest_gap_seconds = line.time - it->second;
      report.worst_client = line.client;
    }
  }
  report.ferry_connections = static_cast<int>(auths.size());
  for (const auto& [client, count] : auths) {
    report.most_auths_on_one_connection = std::max(report.most_auths_on_one_connection, count);
  }
  return report;
}

int64_t CommandStat(redis::Connection& admin, absl::string_view field) {
  absl::StatusOr<redis::Reply> info = admin.Command({"INFO", "commandstats"});
  if (!info.ok()) return -1;
  const std::string stats = redis::InfoField(info->str(), "cmdstat_auth");
  for (absl::string_view part : absl::StrSplit(stats, ',')) {
    int64_t value = 0;
    if (absl::StartsWith(part, absl::StrCat(field, "=")) &&
        absl::SimpleAtoi(part.substr(field.size() + 1), &value)) {
      return value;
    }
  }
  return 0;
}

class IamAuthTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(RequireRedisServerBinary().ok()); }

  // Rotates both servers' passwords every 300 ms on its own connections until StopRotation().
  void StartRotation(std::vector<IamServer*> servers, aws::Credentials credentials) {
    rotation_ = std::thread([this, servers, credentials] {
      std::vector<redis::Connection> admins;
      for (IamServer* server : servers) admins.push_back(Connect(*server->server));
      while (!stop_rotation_) {
        for (size_t i = 0; i < servers.size(); ++i) {
          if (!RotatePasswords(admins[i], *servers[i], credentials).ok()) ++rotation_errors_;
        }
        ++rotations_;
        absl::SleepFor(absl::Milliseconds(300));
      }
    });
    while (rotations_ == 0) absl::SleepFor(absl::Milliseconds(10));  // First passwords set.
  }
  void StopRotation() {
    stop_rotation_ = true;
    if (rotation_.joinable()) rotation_.join();
    EXPECT_EQ(rotation_errors_, 0);
  }
  void TearDown() override { StopRotation(); }

  std::thread rotation_;
  std::atomic<bool> stop_rotation_{false};
  std::atomic<int> rotations_{0};
  std::atomic<int> rotation_errors_{0};
};

// Imds credentials, a copy slowed to ~8 s, re-AUTH every 2 s on every connection of both sides.
TEST_F(IamAuthTest, LongCopyReauthenticatesEveryConnectionWithFreshTokens) {
  auto source = StartIamServer("src-group");
  auto target = StartIamServer("dst-group");
  ASSERT_TRUE(source && target);
  redis::Connection src = Connect(*source->server);
  redis::Connection dst = Connect(*target->server);
  ASSERT_TRUE(LoadMixedData(src, 0, 2400, 13, 0.2).ok());

  auto imds = FakeImds::Start();
  ASSERT_TRUE(imds.ok()) << imds.status();
  const aws::Credentials role = RoleCredentials();
  (*imds)->SetRole("ferry-agent-role", role);
  StartRotation({source.get(), target.get()}, role);
  Monitor source_monitor(*source->server);
  Monitor target_monitor(*target->server);

  const absl::Time start = absl::Now();
  CliResult r =
      RunFerry({"migrate", "--from", source->Uri(), "--from-cacert", source->server->ca_file(),
                "--to", target->Uri(), "--to-cacert", target->server->ca_file(), "--rate-limit",
                "300", "--batch", "50", "--progress", "log", "--output", "json"},
               {{"AWS_EC2_METADATA_SERVICE_ENDPOINT", (*imds)->endpoint()},
                {"AWS_ACCESS_KEY_ID", ""},
                {"AWS_SECRET_ACCESS_KEY", ""},
                {"AWS_REGION", ""}});
  const absl::Duration took = absl::Now() - start;
  StopRotation();
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_GT(took, 3 * kReauth) << "the copy must outlive several re-AUTH intervals";
  EXPECT_TRUE(SameData(src, dst));
  EXPECT_GE((*imds)->credential_fetches(), 1);
  EXPECT_EQ((*imds)->refused_requests(), 0);

  for (auto* side : {&source_monitor, &target_monitor}) {
    redis::Connection& admin = side == &source_monitor ? src : dst;
    const ReauthReport report = CheckReauth(side->Finish(admin));
    SCOPED_TRACE(side == &source_monitor ? "source" : "target");
    EXPECT_GE(report.ferry_connections, 1);
    EXPECT_GE(report.most_auths_on_one_connection, 3) << "no connection re-AUTHed twice";
    EXPECT_LT(report.longest_gap_seconds, absl::ToDoubleSeconds(kReauth) + 1.0)
        << report.worst_client << " ran a command " << report.longest_gap_seconds
        << " s after its last AUTH";
    EXPECT_EQ(CommandStat(admin, "failed_calls"), 0) << "an AUTH was refused";
    EXPECT_GT(CommandStat(admin, "calls"), report.ferry_connections);
  }
  // The passwords really rotate: a token from 10 s ago no longer logs in.
  const std::string old_token =
      aws::ElastiCacheAuthToken(source->request, role, absl::Now() - absl::Seconds(10));
  EXPECT_FALSE(src.Command({"AUTH", kUser, old_token}).ok());
  for (const std::string& secret :
       {role.secret_access_key, role.session_token, std::string("X-Amz-Signature")}) {
    EXPECT_THAT(r.output, Not(HasSubstr(secret)));
  }
}

// Credentials from the environment; none at all is a clear error that names where to put them.
TEST_F(IamAuthTest, EnvironmentCredentialsAndNoCredentials) {
  auto source = StartIamServer("src-group");
  auto target = StartServer();
  ASSERT_TRUE(source && target);
  redis::Connection src = Connect(*source->server);
  ASSERT_TRUE(LoadMixedData(src, 0, 300, 5, 0.2).ok());
  aws::Credentials keys;
  keys.access_key_id = "AKIAFERRYTESTKEY";
  keys.secret_access_key = "env-secret-key-do-not-print";
  StartRotation({source.get()}, keys);

  // The flag instead of the URI option, and the region from the environment.
  const std::string dir = MakeTempDir("ferry-iam-state-");
  auto args = [&](const std::string& state) {
    return std::vector<std::string>{"migrate",
                                    "--from",
                                    WithUser(source->server->uri(), kUser),
                                    "--from-iam",
                                    "src-group",
                                    "--from-cacert",
                                    source->server->ca_file(),
                                    "--to",
                                    target->uri(),
                                    "--progress",
                                    "none",
                                    "--state",
                                    dir + "/" + state};
  };
  CliResult none = RunFerry(args("none.db"), {{"AWS_EC2_METADATA_DISABLED", "true"},
                                              {"AWS_REGION", kRegion},
                                              {"AWS_ACCESS_KEY_ID", ""},
                                              {"AWS_SECRET_ACCESS_KEY", ""}});
  EXPECT_NE(none.exit_code, 0) << none.output;
  EXPECT_THAT(none.output, HasSubstr("no AWS credentials"));
  redis::Connection dst = Connect(*target);
  EXPECT_EQ(dst.Command({"DBSIZE"})->integer(), 0);

  CliResult wrong = RunFerry(args("wrong.db"), {{"AWS_EC2_METADATA_DISABLED", "true"},
                                                {"AWS_REGION", kRegion},
                                                {"AWS_ACCESS_KEY_ID", keys.access_key_id},
                                                {"AWS_SECRET_ACCESS_KEY", "not-the-right-secret"}});
  EXPECT_NE(wrong.exit_code, 0) << wrong.output;
  EXPECT_THAT(wrong.output, HasSubstr("WRONGPASS"));
  EXPECT_THAT(wrong.output, Not(HasSubstr("X-Amz")));

  CliResult ok = RunFerry(args("ok.db"), {{"AWS_EC2_METADATA_DISABLED", "true"},
                                          {"AWS_REGION", kRegion},
                                          {"AWS_ACCESS_KEY_ID", keys.access_key_id},
                                          {"AWS_SECRET_ACCESS_KEY", keys.secret_access_key}});
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_TRUE(SameData(src, dst));
  EXPECT_THAT(ok.output, Not(HasSubstr(keys.secret_access_key)));
  EXPECT_THAT(ok.output, Not(HasSubstr("X-Amz")));
  // The job kept in the state file holds the IAM options, never a token or a key.
  const std::string stored = ReadFile(dir + "/ok.db");
  EXPECT_THAT(stored, HasSubstr("iam=1&cluster=src-group"));
  EXPECT_THAT(stored, Not(HasSubstr("X-Amz")));
  EXPECT_THAT(stored, Not(HasSubstr(keys.secret_access_key)));
  (void)RemoveTree(dir);
}

// Inside one connection: the re-AUTH's reply is read in its place (after the replies of
// commands sent before it, before those sent with it), and a refused re-AUTH breaks the
// connection instead of being ignored. Plain TCP: the endpoint is built by hand, past the URI's
// rediss:// rule, so the server needs no certificates.
TEST_F(IamAuthTest, ReauthReplyIsReadInItsPlaceAndARefusalBreaksTheConnection) {
  auto server = StartIamServer("plain-group", /*tls=*/false);
  ASSERT_TRUE(server);
  aws::Credentials keys;
  keys.access_key_id = "AKIAFERRYTESTKEY";
  keys.secret_access_key = "in-process-secret";
  setenv("AWS_ACCESS_KEY_ID", keys.access_key_id.c_str(), 1);
  setenv("AWS_SECRET_ACCESS_KEY", keys.secret_access_key.c_str(), 1);
  unsetenv("AWS_SESSION_TOKEN");
  StartRotation({server.get()}, keys);

  redis::Endpoint endpoint = server->server->endpoint();
  endpoint.user = kUser;
  endpoint.password.clear();
  endpoint.iam.enabled = true;
  endpoint.iam.cluster = "plain-group";
  endpoint.iam.region = kRegion;
  endpoint.iam.reauth_interval = absl::Milliseconds(200);
  absl::StatusOr<redis::Connection> conn = redis::Connection::Open(endpoint);
  ASSERT_TRUE(conn.ok()) << conn.status();
  redis::Connection admin = Connect(*server->server);

  conn->Append({"ECHO", "a"});
  conn->Append({"ECHO", "b"});
  ASSERT_TRUE(conn->Flush().ok());
  absl::SleepFor(absl::Milliseconds(250));  // Past the interval: the next Flush re-AUTHs.
  conn->Append({"ECHO", "c"});
  ASSERT_TRUE(conn->Flush().ok());
  EXPECT_EQ(conn->pending(), 3u);
  for (const char* want : {"a", "b", "c"}) {
    absl::StatusOr<redis::Reply> reply = conn->ReadReply();
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(reply->str(), want);
  }
  EXPECT_EQ(conn->pending(), 0u);
  EXPECT_EQ(CommandStat(admin, "calls"), 2);  // Open's AUTH and the re-AUTH.
  EXPECT_EQ(CommandStat(admin, "failed_calls"), 0);
  EXPECT_EQ(conn->Command({"ECHO", "d"})->str(), "d");

  // A subscriber is never re-AUTHed: RESP2 refuses AUTH in subscribed mode.
  absl::StatusOr<redis::Connection> subscriber = redis::Connection::Open(endpoint);
  ASSERT_TRUE(subscriber.ok()) << subscriber.status();
  ASSERT_TRUE(subscriber->Command({"PSUBSCRIBE", "__keyspace@0__:*"}).ok());
  absl::SleepFor(absl::Milliseconds(250));
  absl::StatusOr<redis::Reply> pong = subscriber->Command({"PING"});
  ASSERT_TRUE(pong.ok()) << pong.status();
  EXPECT_EQ(pong->element(0).str(), "pong");
  EXPECT_EQ(CommandStat(admin, "calls"), 3);  // Only the subscriber's own login.

  StopRotation();
  ASSERT_TRUE(admin.Command({"ACL", "SETUSER", kUser, "resetpass", ">no-token-works"}).ok());
  absl::SleepFor(absl::Milliseconds(250));
  absl::StatusOr<redis::Reply> refused = conn->Command({"ECHO", "e"});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(refused.status().message(), HasSubstr("re-AUTH"));
  EXPECT_THAT(refused.status().message(), HasSubstr("WRONGPASS"));
  EXPECT_THAT(refused.status().message(), Not(HasSubstr("X-Amz")));
  EXPECT_TRUE(conn->broken());
  unsetenv("AWS_ACCESS_KEY_ID");
  unsetenv("AWS_SECRET_ACCESS_KEY");
}

// A re-AUTH refused mid-copy (the user's passwords stop matching ferry's tokens) fails the job
// with the server's answer: without re-AUTH, the connections opened before would have copied
// everything.
TEST_F(IamAuthTest, RefusedReauthMidCopyFailsTheJob) {
  auto source = StartIamServer("src-group");
  auto target = StartServer();
  ASSERT_TRUE(source && target);
  redis::Connection src = Connect(*source->server);
  ASSERT_TRUE(LoadMixedData(src, 0, 2400, 17, 0).ok());
  aws::Credentials keys;
  keys.access_key_id = "AKIAFERRYTESTKEY";
  keys.secret_access_key = "env-secret-key-do-not-print";
  StartRotation({source.get()}, keys);

  // Once ferry is copying, its tokens stop working.
  std::atomic<bool> ferry_exited{false};
  std::thread revoke([&] {
    redis::Connection admin = Connect(*source->server);
    while (DbSize(*target) == 0 && !ferry_exited) absl::SleepFor(absl::Milliseconds(20));
    StopRotation();
    EXPECT_TRUE(admin.Command({"ACL", "SETUSER", kUser, "resetpass", ">revoked"}).ok());
  });
  CliResult r = RunFerry(
      {"migrate", "--from", source->Uri(), "--from-cacert", source->server->ca_file(), "--to",
       target->uri(), "--rate-limit", "300", "--batch", "50", "--progress", "none"},
      {{"AWS_EC2_METADATA_DISABLED", "true"},
       {"AWS_ACCESS_KEY_ID", keys.access_key_id},
       {"AWS_SECRET_ACCESS_KEY", keys.secret_access_key}});
  ferry_exited = true;
  revoke.join();
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_THAT(r.output, HasSubstr("WRONGPASS"));
  EXPECT_THAT(r.output, Not(HasSubstr(keys.secret_access_key)));
  EXPECT_LT(DbSize(*target), DbSize(*source->server));
}

// A fleet: the job carries only the IAM options (the URI), and the controller (preflight) and
// the agent each sign their own tokens from their own environment. No process prints a secret.
TEST_F(IamAuthTest, FleetProcessesSignTheirOwnTokens) {
  auto source = StartIamServer("src-group");
  auto target = StartServer();
  ASSERT_TRUE(source && target);
  redis::Connection src = Connect(*source->server);
  ASSERT_TRUE(LoadMixedData(src, 0, 500, 23, 0.2).ok());
  aws::Credentials keys;
  keys.access_key_id = "AKIAFERRYFLEETKEY";
  keys.secret_access_key = "fleet-secret-key-do-not-print";
  StartRotation({source.get()}, keys);
  // Inherited by the controller and the agent.
  setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
  setenv("AWS_ACCESS_KEY_ID", keys.access_key_id.c_str(), 1);
  setenv("AWS_SECRET_ACCESS_KEY", keys.secret_access_key.c_str(), 1);
  unsetenv("AWS_SESSION_TOKEN");

  Fleet fleet;
  absl::Status started = fleet.StartController();
  ASSERT_TRUE(started.ok()) << started;
  started = fleet.StartAgents(1);
  ASSERT_TRUE(started.ok()) << started << fleet.AllLogs();
  SubmitResult submitted = fleet.Submit(
      {"--from", source->Uri(), "--from-cacert", source->server->ca_file(), "--to", target->uri()});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  CliResult watched = fleet.Watch(submitted.job_id);
  EXPECT_EQ(watched.exit_code, 0) << watched.output << fleet.AllLogs();
  redis::Connection dst = Connect(*target);
  EXPECT_TRUE(SameData(src, dst));

  absl::StatusOr<std::string> status = fleet.StatusJson(submitted.job_id);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_THAT(*status, HasSubstr("iam=1"));
  const std::string everything = absl::StrCat(*status, submitted.out, submitted.err, watched.output,
                                              fleet.AllLogs(), ReadFile(fleet.state_path()));
  EXPECT_THAT(everything, Not(HasSubstr(keys.secret_access_key)));
  EXPECT_THAT(everything, Not(HasSubstr("X-Amz")));
  for (const char* name :
       {"AWS_EC2_METADATA_DISABLED", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}) {
    unsetenv(name);
  }
}

}  // namespace
}  // namespace ferry::testing
