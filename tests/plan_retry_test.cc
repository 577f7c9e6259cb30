// Planning retried after transient errors, against a real ferry-controller, ferry-agents and
// redis-servers: a source that is stopped (SIGSTOP) or down when the job is submitted and comes
// back plans and copies; one that stays down fails the job after the budget, the status saying
// why it waited; a wrong password fails at once; a waiting job can be cancelled; a controller
// stopped while a job waits stops promptly and plans the job again after its restart.

#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/testing/compare.h"
#include "common/testing/redis_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fleet.h"

namespace ferry::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kRetryFlag[] = "--plan-retry-seconds";

class PlanRetryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RequireRedisServerBinary().ok()) << RequireRedisServerBinary();
    auto source = RedisServer::Start(source_options_);
    auto target = RedisServer::Start();
    ASSERT_TRUE(source.ok()) << source.status();
    ASSERT_TRUE(target.ok()) << target.status();
    source_ = *std::move(source);
    target_ = *std::move(target);
    auto conn = source_->Connect();
    ASSERT_TRUE(conn.ok()) << conn.status();
    ASSERT_TRUE(LoadMixedData(*conn, 0, 2000, 7, 0.2).ok());
  }

  void TearDown() override {
    if (source_ != nullptr && source_->running()) kill(source_->pid(), SIGCONT);
  }

  // A controller whose planning retries for `budget_seconds`, and `agents` agents.
  void StartFleet(const std::string& budget_seconds, int agents = 1) {
    FleetOptions options;
    options.controller_flags = {kRetryFlag, budget_seconds};
    fleet_ = std::make_unique<Fleet>(options);
    absl::Status started = fleet_->StartController();
    ASSERT_TRUE(started.ok()) << started;
    if (agents > 0) {
      absl::Status registered = fleet_->StartAgents(agents);
      ASSERT_TRUE(registered.ok()) << registered << "\n" << fleet_->AllLogs();
    }
  }

  std::string Submit(const std::string& from, const EnvList& env = {}) {
    SubmitResult r = fleet_->Submit({"--from", from, "--to", target_->uri()}, env);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    return r.job_id;
  }

  // Polls `ferry status --output json` until the job waits for a planning retry whose text has
  // `says`; returns that JSON.
  std::string WaitForRetry(const std::string& job, const std::string& says) {
    std::string json;
    absl::Status waited = WaitFor(
        [&] {
          json = fleet_->StatusJson(job).value_or("");
          return absl::StrContains(json, "\"planning_retry\"") && absl::StrContains(json, says);
        },
        absl::Seconds(30), absl::Milliseconds(100));
    EXPECT_TRUE(waited.ok()) << json << "\n" << fleet_->AllLogs();
    EXPECT_EQ(JsonScalar(json, "state"), "JOB_STATE_PENDING") << json;
    return json;
  }

  void ExpectDoneAndCopied(const std::string& job) {
    CliResult watch = fleet_->Watch(job, absl::Minutes(2));
    EXPECT_EQ(watch.exit_code, 0) << watch.output << "\n" << fleet_->AllLogs();
    EXPECT_EQ(JsonScalar(watch.json_line(), "state"), "done") << watch.output;
    auto src = source_->Connect();
    auto dst = target_->Connect();
    ASSERT_TRUE(src.ok() && dst.ok());
    EXPECT_TRUE(SameData(*src, *dst));
    // Planned, the job no longer says it waits.
    EXPECT_THAT(fleet_->StatusJson(job).value_or(""), Not(HasSubstr("planning_retry")));
  }

  RedisServerOptions source_options_;
  std::unique_ptr<RedisServer> source_;
  std::unique_ptr<RedisServer> target_;
  std::unique_ptr<Fleet> fleet_;
};

TEST_F(PlanRetryTest, StoppedSourceThatContinuesIsPlannedAndCopied) {
  StartFleet("30");
  ASSERT_EQ(kill(source_->pid(), SIGSTOP), 0);
  const std::string job = Submit(source_->uri());
  // The first attempt meets the connect timeout (the kernel accepts, nobody answers).
  const std::string json = WaitForRetry(job, "planning attempt 1 failed");
  EXPECT_THAT(json, HasSubstr("no reply within")) << json;
  EXPECT_THAT(json, HasSubstr("next attempt in")) << json;
  CliResult status = fleet_->Ferry("status", {job});
  EXPECT_THAT(status.output, HasSubstr("waiting: planning attempt 1 failed")) << status.output;
  ASSERT_EQ(kill(source_->pid(), SIGCONT), 0);
  ExpectDoneAndCopied(job);
  EXPECT_THAT(ReadFile(fleet_->controller_log()), HasSubstr("planning attempt 1 failed"));
}

TEST_F(PlanRetryTest, SourceDownAtSubmitAndStartedLaterIsPlannedAndCopied) {
  StartFleet("30");
  {
    auto conn = source_->Connect();
    ASSERT_TRUE(conn.ok()) << conn.status();
    ASSERT_TRUE(conn->Command({"SAVE"}).ok());  // Restart(keep_data) loads it.
  }
  ASSERT_TRUE(source_->Stop().ok());
  const std::string job = Submit(source_->uri());
  WaitForRetry(job, "cannot connect");
  // Still waiting after more attempts: the retry does not give up early.
  WaitForRetry(job, "planning attempt 3 failed");
  ASSERT_TRUE(source_->Restart(/*keep_data=*/true).ok());
  ExpectDoneAndCopied(job);
}

// `ferry migrate` (its embedded controller) rides out a source that is down when it starts,
// and says on stderr what it waits for.
TEST_F(PlanRetryTest, MigrateSaysWhatItWaitsForAndCopiesOnceTheSourceIsBack) {
  ASSERT_TRUE(source_->Restart(/*keep_data=*/true).ok());  // SAVE: the data survives the stop.
  ASSERT_TRUE(source_->Stop().ok());
  const ScopedTempDir dir("ferry-plan-retry-");
  const std::string log = dir.path() + "/migrate.log";
  absl::StatusOr<Subprocess> migrate =
      StartFerry({"migrate", "--from", source_->uri(), "--to", target_->uri(), "--progress", "none",
                  kRetryFlag, "30"},
                 log);
  ASSERT_TRUE(migrate.ok()) << migrate.status();
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(ReadFile(log), "waiting: planning attempt"); },
                      absl::Seconds(20))
                  .ok())
      << ReadFile(log);
  EXPECT_THAT(ReadFile(log), HasSubstr("cannot connect"));
  ASSERT_TRUE(source_->Restart(/*keep_data=*/true).ok());
  absl::StatusOr<int> code = migrate->Wait(absl::Minutes(2));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << ReadFile(log);
  auto src = source_->Connect();
  auto dst = target_->Connect();
  ASSERT_TRUE(src.ok() && dst.ok());
  EXPECT_TRUE(SameData(*src, *dst));
  EXPECT_GT(TotalKeys(*target_), 0);
}

TEST_F(PlanRetryTest, SourceThatStaysDownFailsAfterTheBudgetWithTheAttempts) {
  StartFleet("4", /*agents=*/0);
  const std::string dead = absl::StrCat("redis://127.0.0.1:", FreeTcpPort());
  const absl::Time start = absl::Now();
  const std::string job = Submit(dead);
  WaitForRetry(job, "cannot connect");
  CliResult watch = fleet_->Watch(job, absl::Minutes(1));
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(watch.exit_code, 3) << watch.output;  // UNAVAILABLE: cannot connect.
  absl::StatusOr<std::string> json = fleet_->StatusJson(job);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(JsonScalar(*json, "state"), "JOB_STATE_FAILED") << *json;
  EXPECT_EQ(JsonInt(*json, "error_code"), 14) << *json;
  EXPECT_THAT(*json, ::testing::ContainsRegex("planning failed after [3-9] attempts over 4"))
      << *json;
  EXPECT_THAT(*json, HasSubstr("cannot connect")) << *json;
  EXPECT_THAT(*json, Not(HasSubstr("planning_retry"))) << *json;
  EXPECT_GE(took, absl::Seconds(4));
  EXPECT_LT(took, absl::Seconds(20));
}

// A source with a password.
class PlanRetryAuthTest : public PlanRetryTest {
 protected:
  PlanRetryAuthTest() { source_options_.requirepass = "right-Pw-5c1e"; }
};

TEST_F(PlanRetryAuthTest, WrongPasswordFailsAtOnceWithoutRetryOrPassword) {
  StartFleet("60", /*agents=*/0);
  const std::string password = "wrong-Pw-9d2f7b";
  const absl::Time start = absl::Now();
  const std::string job = Submit(source_->uri(), {{"FERRY_FROM_PASSWORD", password}});
  ASSERT_TRUE(fleet_->WaitForState(job, "JOB_STATE_FAILED", absl::Seconds(30)).ok())
      << fleet_->AllLogs();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  absl::StatusOr<std::string> json = fleet_->StatusJson(job);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(JsonInt(*json, "error_code"), 16) << *json;  // UNAUTHENTICATED.
  EXPECT_THAT(*json, HasSubstr("planning failed: ")) << *json;
  EXPECT_THAT(*json, Not(HasSubstr("attempt"))) << *json;
  const std::string log = ReadFile(fleet_->controller_log());
  EXPECT_THAT(log, Not(HasSubstr("planning attempt"))) << log;
  for (const std::string& text : {*json, log, fleet_->Ferry("status", {job}).output}) {
    EXPECT_THAT(text, Not(HasSubstr(password)));
  }
}

TEST_F(PlanRetryTest, JobWaitingForARetryCanBeCancelled) {
  StartFleet("60", /*agents=*/0);
  const std::string job = Submit(absl::StrCat("redis://127.0.0.1:", FreeTcpPort()));
  WaitForRetry(job, "cannot connect");
  CliResult cancel = fleet_->Ferry("cancel", {job});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.output;
  EXPECT_EQ(fleet_->State(job), "JOB_STATE_CANCELLED");
  // Past the next attempt's time (1 s, then 2 s, 4 s...): the retry found the job cancelled.
  const std::string log_before = ReadFile(fleet_->controller_log());
  absl::SleepFor(absl::Seconds(5));
  absl::StatusOr<std::string> json = fleet_->StatusJson(job);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(JsonScalar(*json, "state"), "JOB_STATE_CANCELLED") << *json;
  EXPECT_THAT(*json, Not(HasSubstr("planning_retry"))) << *json;
  const std::string log_after = ReadFile(fleet_->controller_log()).substr(log_before.size());
  EXPECT_THAT(log_after, Not(HasSubstr("planning job"))) << log_after;
}

TEST_F(PlanRetryTest, ControllerStoppedWhileAJobWaitsStopsPromptlyAndPlansItAfterARestart) {
  StartFleet("60", /*agents=*/0);
  ASSERT_TRUE(source_->Restart(/*keep_data=*/true).ok());  // SAVE: the data survives the stop.
  ASSERT_TRUE(source_->Stop().ok());
  const std::string job = Submit(source_->uri());
  WaitForRetry(job, "cannot connect");
  const absl::Time stop = absl::Now();
  absl::StatusOr<int> code = fleet_->StopController(absl::Seconds(30));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  EXPECT_LT(absl::Now() - stop, absl::Seconds(5)) << "the retry's wait held the shutdown";
  ASSERT_TRUE(fleet_->StartController().ok());
  WaitForRetry(job, "planning attempt 1 failed");  // The restarted controller's first.
  ASSERT_TRUE(source_->Restart(/*keep_data=*/true).ok());
  ASSERT_TRUE(fleet_->StartAgents(1).ok());
  ExpectDoneAndCopied(job);
}

}  // namespace
}  // namespace ferry::testing
