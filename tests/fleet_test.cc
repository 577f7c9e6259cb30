// The ferry CLI against a real ferry-controller and ferry-agents between real redis-servers:
// submit, status, list, watch, cancel, pause, resume, two jobs at once, unknown ids, TLS and
// the bearer token off loopback, and passwords that never show. Copies end with a key-by-key
// comparison. Faults mid-job are in fleet_faults_test.cc.

#include "tests/fleet.h"

#include <sys/stat.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/testing/compare.h"
#include "common/testing/redis_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr absl::Duration kQuiet = absl::Milliseconds(1500);

// A source loaded with data and an empty target.
struct Pair {
  std::unique_ptr<RedisServer> source;
  std::unique_ptr<RedisServer> target;
};

class FleetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RequireRedisServerBinary().ok()) << RequireRedisServerBinary();
  }

  // Starts a source with `keys` keys in db 0 (and a tenth of that in db 3) and an empty target.
  Pair StartPair(int keys, uint64_t seed, RedisServerOptions source_options = {},
                 RedisServerOptions target_options = {}) {
    Pair pair;
    auto source = RedisServer::Start(source_options);
    EXPECT_TRUE(source.ok()) << source.status();
    auto target = RedisServer::Start(target_options);
    EXPECT_TRUE(target.ok()) << target.status();
    if (!source.ok() || !target.ok()) return pair;
    pair.source = *std::move(source);
    pair.target = *std::move(target);
    for (int db : {0, 3}) {
      auto conn = pair.source->Connect(db);
      EXPECT_TRUE(conn.ok()) << conn.status();
      if (!conn.ok()) return pair;
      EXPECT_TRUE(LoadMixedData(*conn, db, db == 0 ? keys : keys / 10, seed + db, 0.2).ok());
    }
    return pair;
  }

  // Starts the controller and `agents` agents.
  void StartFleet(int agents, FleetOptions options = {}) {
    fleet_ = std::make_unique<Fleet>(std::move(options));
    absl::Status started = fleet_->StartController();
    ASSERT_TRUE(started.ok()) << started;
    absl::Status registered = fleet_->StartAgents(agents);
    ASSERT_TRUE(registered.ok()) << registered << "\n" << fleet_->AllLogs();
  }

  std::string Submit(const Pair& pair, const std::vector<std::string>& extra = {},
                     const EnvList& env = {}) {
    std::vector<std::string> args = {"--from", pair.source->uri(), "--to", pair.target->uri()};
    args.insert(args.end(), extra.begin(), extra.end());
    SubmitResult r = fleet_->Submit(args, env);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    return r.job_id;
  }

  void ExpectWatchDone(const std::string& job) {
    CliResult r = fleet_->Watch(job);
    EXPECT_EQ(r.exit_code, 0) << r.output << "\n" << fleet_->AllLogs();
    EXPECT_EQ(JsonScalar(r.json_line(), "state"), "done") << r.output;
  }

  void ExpectSameData(const Pair& pair) {
    auto src = pair.source->Connect();
    auto dst = pair.target->Connect();
    ASSERT_TRUE(src.ok() && dst.ok());
    EXPECT_TRUE(SameData(*src, *dst));
    EXPECT_EQ(TotalKeys(*pair.target), TotalKeys(*pair.source));
  }

  // Polls until the target holds at least `keys` keys.
  void WaitForTargetKeys(const Pair& pair, int64_t keys) {
    absl::Status status = WaitFor([&] { return TotalKeys(*pair.target) >= keys; },
                                  absl::Seconds(120), absl::Milliseconds(50));
    ASSERT_TRUE(status.ok()) << TotalKeys(*pair.target) << " keys\n" << fleet_->AllLogs();
  }

  // Waits until the target's key count holds still (agents stop at a batch boundary), then
  // checks it stays so for a while. Returns the count.
  int64_t ExpectTargetStopsGrowing(const Pair& pair) {
    int64_t last = -1;
    absl::Status settled = WaitFor(
        [&] {
          const int64_t before = TotalKeys(*pair.target);
          absl::SleepFor(absl::Milliseconds(300));
          last = TotalKeys(*pair.target);
          return before == last;
        },
        absl::Seconds(30), absl::Milliseconds(10));
    EXPECT_TRUE(settled.ok()) << "the target keeps growing\n" << fleet_->AllLogs();
    absl::SleepFor(kQuiet);  // Measures that nothing is written.
    EXPECT_EQ(TotalKeys(*pair.target), last) << fleet_->AllLogs();
    return last;
  }

  // Every agent reports no running shard.
  void ExpectAgentsIdle() {
    absl::Status idle = WaitFor(
        [&] {
          for (int i = 0; i < fleet_->agent_count(); ++i) {
            std::optional<int> running = fleet_->AgentRunning(i);
            if (!running.has_value() || *running != 0) return false;
          }
          return true;
        },
        absl::Seconds(30), absl::Milliseconds(100));
    EXPECT_TRUE(idle.ok()) << fleet_->Ferry("agents").output;
  }

  std::unique_ptr<Fleet> fleet_;
};

TEST_F(FleetTest, SubmitPrintsOnlyTheIdAndTheJobIsListedAndCopied) {
  Pair pair = StartPair(3000, 1);
  ASSERT_NE(pair.target, nullptr);
  StartFleet(2);
  SubmitResult r = fleet_->Submit({"--from", pair.source->uri(), "--to", pair.target->uri()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // Only the id and its newline: scripts take it with $(ferry submit ...).
  EXPECT_THAT(r.out, ::testing::MatchesRegex("[A-Za-z0-9_-]+\n"));
  const std::string job = r.job_id;
  ExpectWatchDone(job);
  ExpectSameData(pair);

  CliResult list = fleet_->Ferry("list");
  EXPECT_EQ(list.exit_code, 0) << list.output;
  EXPECT_THAT(list.output, HasSubstr(job));
  EXPECT_THAT(list.output, HasSubstr("done"));
  CliResult list_json = fleet_->Ferry("list", {"--output", "json"});
  EXPECT_EQ(list_json.exit_code, 0) << list_json.output;
  EXPECT_THAT(list_json.output, HasSubstr(absl::StrCat("\"id\":\"", job, "\"")));
  CliResult status = fleet_->Ferry("status", {job});
  EXPECT_EQ(status.exit_code, 0) << status.output;
  EXPECT_THAT(status.output, HasSubstr(absl::StrCat("job ", job, ": done")));
  absl::StatusOr<std::string> json = fleet_->StatusJson(job);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(JsonScalar(*json, "state"), "JOB_STATE_DONE");
  EXPECT_GE(JsonInt(*json, "copied"), TotalKeys(*pair.source)) << *json;
  // A finished job cannot be cancelled.
  CliResult cancel = fleet_->Ferry("cancel", {job});
  EXPECT_NE(cancel.exit_code, 0) << cancel.output;
}

TEST_F(FleetTest, UnknownJobIdIsNotFound) {
  StartFleet(1);
  for (const char* command : {"status", "watch", "cancel", "pause", "resume"}) {
    CliResult r = fleet_->Ferry(command, {"nonexistent-id"}, {}, absl::Seconds(60));
    EXPECT_EQ(r.exit_code, 2) << command << ": " << r.output;  // NOT_FOUND, not "unreachable".
    EXPECT_THAT(absl::AsciiStrToLower(r.output), HasSubstr("not found")) << command;
    EXPECT_THAT(r.output, HasSubstr("nonexistent-id")) << command;
  }
}

TEST_F(FleetTest, CancelStopsTheAgents) {
  Pair pair = StartPair(20000, 2);
  ASSERT_NE(pair.target, nullptr);
  StartFleet(3);
  const std::string job = Submit(pair, {"--rate-limit", "3000", "--batch", "200"});
  WaitForTargetKeys(pair, 1000);
  CliResult cancel = fleet_->Ferry("cancel", {job});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.output;
  EXPECT_THAT(cancel.output, HasSubstr("cancelled"));
  EXPECT_EQ(fleet_->State(job), "JOB_STATE_CANCELLED");
  const int64_t copied = ExpectTargetStopsGrowing(pair);
  EXPECT_LT(copied, TotalKeys(*pair.source)) << "the job ended before the cancel";
  ExpectAgentsIdle();
  CliResult watch = fleet_->Watch(job);
  EXPECT_EQ(watch.exit_code, 130) << watch.output;  // As `ferry migrate` interrupted.
  EXPECT_EQ(JsonScalar(watch.json_line(), "state"), "cancelled") << watch.output;
  // Cancelled is final: it can be neither resumed nor cancelled again.
  EXPECT_NE(fleet_->Ferry("cancel", {job}).exit_code, 0);
  EXPECT_EQ(fleet_->State(job), "JOB_STATE_CANCELLED");
}

TEST_F(FleetTest, PauseStopsCopyingAndResumeFinishesTheJob) {
  Pair pair = StartPair(20000, 3);
  ASSERT_NE(pair.target, nullptr);
  StartFleet(3);
  const std::string job = Submit(pair, {"--rate-limit", "3000", "--batch", "200"});
  WaitForTargetKeys(pair, 1000);
  CliResult pause = fleet_->Ferry("pause", {job});
  ASSERT_EQ(pause.exit_code, 0) << pause.output;
  EXPECT_THAT(pause.output, HasSubstr("paused"));
  EXPECT_EQ(fleet_->State(job), "JOB_STATE_PAUSED");
  const int64_t copied = ExpectTargetStopsGrowing(pair);
  EXPECT_LT(copied, TotalKeys(*pair.source)) << "the job ended before the pause";
  ExpectAgentsIdle();
  EXPECT_EQ(fleet_->State(job), "JOB_STATE_PAUSED");
  // A paused job stays paused across a controller crash.
  fleet_->KillController();
  absl::Status restarted = fleet_->StartController();
  ASSERT_TRUE(restarted.ok()) << restarted;
  ASSERT_TRUE(fleet_->WaitForAgents(3).ok()) << fleet_->AllLogs();
  EXPECT_EQ(fleet_->State(job), "JOB_STATE_PAUSED");
  absl::SleepFor(kQuiet);  // Measures that nothing is written.
  EXPECT_EQ(TotalKeys(*pair.target), copied);

  CliResult resume = fleet_->Ferry("resume", {job});
  ASSERT_EQ(resume.exit_code, 0) << resume.output;
  ExpectWatchDone(job);
  ExpectSameData(pair);
}

TEST_F(FleetTest, TwoJobsRunAtOnceAndBothFinish) {
  Pair first = StartPair(8000, 4);
  Pair second = StartPair(8000, 5);
  ASSERT_NE(first.target, nullptr);
  ASSERT_NE(second.target, nullptr);
  StartFleet(3);
  const std::vector<std::string> options = {"--rate-limit", "3000", "--batch", "200"};
  const std::string a = Submit(first, options);
  const std::string b = Submit(second, options);
  ASSERT_NE(a, b);
  // Fair scheduling: both make progress at the same time, neither waits for the other.
  absl::Status both = WaitFor(
      [&] {
        return TotalKeys(*first.target) > 0 && TotalKeys(*second.target) > 0 &&
               TotalKeys(*first.target) < TotalKeys(*first.source) &&
               TotalKeys(*second.target) < TotalKeys(*second.source);
      },
      absl::Seconds(60), absl::Milliseconds(50));
  EXPECT_TRUE(both.ok()) << fleet_->AllLogs();
  ExpectWatchDone(a);
  ExpectWatchDone(b);
  ExpectSameData(first);
  ExpectSameData(second);
}

TEST_F(FleetTest, SecondControllerOnTheSamePortOrStateFileIsRefused) {
  StartFleet(0);
  // Another controller on the same port would take half of the connections (agents and CLI
  // calls spread over both), and two on one state file would lease the same shards twice.
  auto start_second = [&](int port, const std::string& state) {
    std::vector<std::string> argv = {FerryBinary("ferry-controller"), "--listen",
                                     absl::StrCat("127.0.0.1:", port), "--state", state};
    SubprocessOptions options;
    options.log_file = fleet_->dir() + "/second.log";
    return Subprocess::Start(argv, options);
  };
  absl::StatusOr<Subprocess> same_port =
      start_second(fleet_->port(), fleet_->dir() + "/other-state.db");
  ASSERT_TRUE(same_port.ok()) << same_port.status();
  absl::StatusOr<int> code = same_port->Wait(absl::Seconds(20));
  EXPECT_TRUE(code.ok() && *code != 0)
      << "a second ferry-controller serves on the port of the first\n"
      << ReadFile(fleet_->dir() + "/second.log");

  absl::StatusOr<Subprocess> same_state = start_second(FreeTcpPort(), fleet_->state_path());
  ASSERT_TRUE(same_state.ok()) << same_state.status();
  code = same_state->Wait(absl::Seconds(20));
  EXPECT_TRUE(code.ok() && *code != 0)
      << "a second ferry-controller runs on the state file of the first\n"
      << ReadFile(fleet_->dir() + "/second.log");
  // The first one still answers.
  EXPECT_EQ(fleet_->Ferry("list").exit_code, 0);
}

// Passwords given to `ferry submit` in every way, right and wrong, and every place they must
// not show up afterwards.
class FleetSecretsTest : public FleetTest {
 protected:
  const std::string source_password_ = "src-Pw-9d41e7c3";
  const std::string target_password_ = "dst-Pw-52c8aa0f";
  const std::string wrong_password_ = "wrong-Pw-31f0b6d2";
  const EnvList passwords_ = {{"FERRY_FROM_PASSWORD", source_password_},
                              {"FERRY_TO_PASSWORD", target_password_}};

  void SetUp() override {
    FleetTest::SetUp();
    RedisServerOptions source_options, target_options;
    source_options.requirepass = source_password_;
    target_options.requirepass = target_password_;
    pair_ = StartPair(3000, 6, source_options, target_options);
    ASSERT_NE(pair_.target, nullptr);
    StartFleet(2);
  }

  // `ferry submit` then `ferry watch`; both outputs are kept for the final check.
  SubmitResult SubmitAndWatch(const std::vector<std::string>& args, const EnvList& env,
                              int want_exit_code, const std::string& want_state) {
    SubmitResult submitted = fleet_->Submit(args, env);
    EXPECT_EQ(submitted.exit_code, 0) << submitted.out << submitted.err;
    EXPECT_THAT(submitted.out, ::testing::MatchesRegex("[A-Za-z0-9_-]+\n"));  // Warnings: stderr.
    outputs_.push_back(submitted.out + submitted.err);
    CliResult watch =
        fleet_->Ferry("watch", {submitted.job_id, "--progress", "log", "--output", "json"});
    EXPECT_EQ(watch.exit_code, want_exit_code) << watch.output << fleet_->AllLogs();
    EXPECT_EQ(JsonScalar(watch.json_line(), "state"), want_state) << watch.output;
    outputs_.push_back(watch.output);
    job_ids_.push_back(submitted.job_id);
    return submitted;
  }

  // The state file holds the passwords: only its owner may read it or SQLite's side files
  // (which exist while the controller runs).
  void ExpectStateFileIsPrivate() {
    for (const std::string suffix : {"", "-wal", "-shm"}) {
      struct stat st;
      const std::string path = fleet_->state_path() + suffix;
      if (stat(path.c_str(), &st) != 0) {
        EXPECT_NE(suffix, "") << "no state file at " << path;
        continue;
      }
      EXPECT_EQ(st.st_mode & 0777, 0600) << path;
    }
  }

  // Every answer of the CLI about every job, then every log once the processes have stopped.
  void ExpectNoPasswordAnywhere() {
    for (const std::string& id : job_ids_) {
      for (const char* output : {"json", "text"}) {
        CliResult status = fleet_->Ferry("status", {id, "--failed", "--output", output});
        EXPECT_EQ(status.exit_code, 0) << status.output;
        outputs_.push_back(status.output);
      }
    }
    for (const char* output : {"json", "text"}) {
      outputs_.push_back(fleet_->Ferry("list", {"--output", output}).output);
      outputs_.push_back(fleet_->Ferry("agents", {"--output", output}).output);
    }
    for (int i = 0; i < fleet_->agent_count(); ++i) {
      absl::StatusOr<int> code = fleet_->StopAgent(i);
      EXPECT_TRUE(code.ok() && *code == 0) << ReadFile(fleet_->agent_log(i));
      outputs_.push_back(ReadFile(fleet_->agent_log(i)));
    }
    absl::StatusOr<int> code = fleet_->StopController();
    EXPECT_TRUE(code.ok() && *code == 0) << ReadFile(fleet_->controller_log());
    const std::string controller_log = ReadFile(fleet_->controller_log());
    EXPECT_THAT(controller_log, HasSubstr(job_ids_.back()));  // The log was there to read.
    outputs_.push_back(controller_log);
    for (const std::string& output : outputs_) {
      for (const std::string& password : {source_password_, target_password_, wrong_password_}) {
        EXPECT_THAT(output, Not(HasSubstr(password)));
      }
    }
  }

  Pair pair_;
  std::vector<std::string> outputs_;
  std::vector<std::string> job_ids_;
};

TEST_F(FleetSecretsTest, PasswordsNeverAppearInLogsOrAnswers) {
  const std::vector<std::string> uris = {"--from", pair_.source->uri(), "--to",
                                         pair_.target->uri()};
  // From FERRY_FROM_PASSWORD and FERRY_TO_PASSWORD.
  SubmitAndWatch(uris, passwords_, 0, "done");
  ExpectSameData(pair_);

  // Inside the URIs (warned about); the stored URIs lose them.
  const SubmitResult in_uri = SubmitAndWatch(
      {"--from", absl::StrCat("redis://:", source_password_, "@127.0.0.1:", pair_.source->port()),
       "--to", absl::StrCat("redis://:", target_password_, "@127.0.0.1:", pair_.target->port())},
      {}, 0, "done");
  EXPECT_THAT(in_uri.err, HasSubstr("FERRY_FROM_PASSWORD"));  // The warning.
  absl::StatusOr<std::string> json = fleet_->StatusJson(in_uri.job_id);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_THAT(*json, HasSubstr(absl::StrCat("\"uri\":\"redis://127.0.0.1:", pair_.source->port())));
  EXPECT_THAT(*json, Not(HasSubstr("\"password\"")));

  // A wrong password: planning cannot log in, the job fails with an access error (exit 3).
  SubmitAndWatch(uris, {{"FERRY_FROM_PASSWORD", wrong_password_}, passwords_[1]}, 3, "failed");

  ExpectStateFileIsPrivate();

  // The source's password changes mid-job: the agents' new connections are refused, which
  // fails the job through the agents' error path (planning passed).
  pair_.target->FlushAll();
  SubmitResult rotated = fleet_->Submit({"--from", pair_.source->uri(), "--to", pair_.target->uri(),
                                         "--rate-limit", "1000", "--batch", "100"},
                                        passwords_);
  ASSERT_EQ(rotated.exit_code, 0) << rotated.err;
  job_ids_.push_back(rotated.job_id);
  WaitForTargetKeys(pair_, 1);
  auto admin = pair_.source->Connect();
  ASSERT_TRUE(admin.ok()) << admin.status();
  ASSERT_TRUE(admin->Command({"CONFIG", "SET", "requirepass", "rotated-Pw-77aa01"}).ok());
  ASSERT_TRUE(admin->Command({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"}).ok());
  CliResult watch = fleet_->Watch(rotated.job_id, absl::Minutes(3));
  ASSERT_TRUE(admin->Command({"CONFIG", "SET", "requirepass", source_password_}).ok());
  EXPECT_EQ(watch.exit_code, 3) << watch.output << fleet_->AllLogs();
  EXPECT_EQ(JsonScalar(watch.json_line(), "state"), "failed") << watch.output;
  outputs_.push_back(watch.output);

  ExpectNoPasswordAnywhere();
}

// A self-signed certificate for localhost and 127.0.0.1, its key, and a token file.
class FleetSecurityTest : public FleetTest {
 protected:
  void SetUp() override {
    FleetTest::SetUp();
    ASSERT_FALSE(dir_.empty());
    absl::StatusOr<std::string> cert = GenerateSelfSignedCert(dir_);
    ASSERT_TRUE(cert.ok()) << cert.status();
    cert_ = *cert;
    ASSERT_TRUE(WriteTextFile(token_file_, token_ + "\n").ok());
  }

  ScopedTempDir scratch_{"ferry-tls-"};
  const std::string dir_ = scratch_.path();
  std::string cert_;
  const std::string key_ = dir_ + "/key.pem";
  const std::string token_file_ = dir_ + "/token";
  const std::string token_ = "right-token-5b7e19c4";
};

TEST_F(FleetSecurityTest, NonLoopbackAddressNeedsTlsAndTokenUnlessInsecure) {
  // Refused without TLS and a token, with a message that says what to do.
  const std::vector<std::vector<std::string>> refused = {
      {},
      {"--token-file", token_file_},
      {"--tls-cert", cert_, "--tls-key", key_},
  };
  for (const std::vector<std::string>& flags : refused) {
    const int port = FreeTcpPort();
    std::vector<std::string> argv = {FerryBinary("ferry-controller"), "--listen",
                                     absl::StrCat("0.0.0.0:", port), "--state",
                                     dir_ + "/refused.db"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    SubprocessOptions options;
    options.log_file = dir_ + "/refused.log";
    absl::StatusOr<Subprocess> controller = Subprocess::Start(argv, options);
    ASSERT_TRUE(controller.ok()) << controller.status();
    absl::StatusOr<int> code = controller->Wait(absl::Seconds(30));
    ASSERT_TRUE(code.ok()) << "ferry-controller serves on 0.0.0.0 with " << flags.size()
                           << " flags";
    EXPECT_NE(*code, 0);
    const std::string log = ReadFile(options.log_file);
    EXPECT_THAT(log, HasSubstr("TLS"));
    EXPECT_THAT(log, HasSubstr("--insecure"));
    (void)RemoveTree(options.log_file);
  }

  // --insecure starts it anyway, with a warning; SIGTERM stops it cleanly.
  FleetOptions options;
  options.listen_host = "0.0.0.0";
  options.controller_flags = {"--insecure"};
  fleet_ = std::make_unique<Fleet>(options);
  absl::Status started = fleet_->StartController();
  ASSERT_TRUE(started.ok()) << started;
  EXPECT_THAT(ReadFile(fleet_->controller_log()), HasSubstr("--insecure"));
  absl::StatusOr<int> code = fleet_->StopController();
  EXPECT_TRUE(code.ok() && *code == 0) << ReadFile(fleet_->controller_log());
}

TEST_F(FleetSecurityTest, OffLoopbackAWrongOrMissingTokenIsRefused) {
  FleetOptions options;
  options.listen_host = "0.0.0.0";
  options.controller_flags = {"--tls-cert", cert_, "--tls-key", key_, "--token-file", token_file_};
  options.client_flags = {"--tls-ca", cert_};
  options.client_env = {{"FERRY_TOKEN", token_}};
  fleet_ = std::make_unique<Fleet>(options);
  absl::Status started = fleet_->StartController();  // Polls `ferry list` with the right token.
  ASSERT_TRUE(started.ok()) << started;

  CliResult wrong = fleet_->Ferry("list", {}, {{"FERRY_TOKEN", "wrong-token"}});
  EXPECT_EQ(wrong.exit_code, 3) << wrong.output;
  EXPECT_THAT(absl::AsciiStrToLower(wrong.output), HasSubstr("token")) << wrong.output;
  CliResult missing = fleet_->Ferry("list", {}, {{"FERRY_TOKEN", ""}});
  EXPECT_EQ(missing.exit_code, 3) << missing.output;
  EXPECT_THAT(absl::AsciiStrToLower(missing.output), HasSubstr("token")) << missing.output;
  CliResult plaintext = RunFerry({"list", "--controller", fleet_->address(), "--timeout", "3"},
                                 {{"FERRY_TOKEN", token_}});
  EXPECT_NE(plaintext.exit_code, 0) << plaintext.output;
  CliResult right = fleet_->Ferry("list");
  EXPECT_EQ(right.exit_code, 0) << right.output;

  // An agent with a wrong token is refused and says so; one with the right token copies a job.
  absl::StatusOr<int> intruder = fleet_->StartAgent(2, {}, {{"FERRY_TOKEN", "wrong-token"}});
  ASSERT_TRUE(intruder.ok());
  absl::Status refused_agent = WaitFor(
      [&] {
        return absl::AsciiStrToLower(ReadFile(fleet_->agent_log(*intruder)))
                   .find("unauthenticated") != std::string::npos;
      },
      absl::Seconds(60), absl::Milliseconds(100));
  EXPECT_TRUE(refused_agent.ok()) << ReadFile(fleet_->agent_log(*intruder));
  EXPECT_TRUE(fleet_->WaitForAgents(0).ok());
  fleet_->KillAgent(*intruder);

  Pair pair = StartPair(3000, 7);
  ASSERT_NE(pair.target, nullptr);
  ASSERT_TRUE(fleet_->StartAgent().ok());
  ASSERT_TRUE(fleet_->WaitForAgents(1).ok()) << fleet_->AllLogs();
  const std::string job = Submit(pair);
  ExpectWatchDone(job);
  ExpectSameData(pair);
  EXPECT_THAT(fleet_->AllLogs(), Not(HasSubstr(token_)));
}

}  // namespace
}  // namespace ferry::testing
