// The Scheduler's jobs: completion, planning errors, failures and retries, pause, resume,
// cancel, draining agents, rates.

#include "server/scheduler_test_fixture.h"

namespace ferry::server {
namespace {

TEST_F(SchedulerTest, JobIsDoneWhenEveryShardFinished) {
  std::string job = Submit();
  Plan(job, 2);
  FakeAgent a = Connect(2);
  std::vector<Lease> leases = a.sender->Leases();
  ASSERT_TRUE(Finish(a, leases[0]).ok());
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_RUNNING);
  ASSERT_TRUE(Finish(a, leases[1]).ok());
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_DONE);
  EXPECT_EQ(scheduler_->CancelJob(job).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(SchedulerTest, EmptyPlanIsDoneAtOnce) {
  std::string job = Submit();
  Plan(job, 0);
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_DONE);
}

TEST_F(SchedulerTest, PlanningErrorFailsTheJobWithoutPasswords) {
  std::string job = Submit();
  EXPECT_EQ(scheduler_->JobsToPlan(), std::vector<std::string>{job});
  ASSERT_TRUE(
      scheduler_->FailPlanning(job, absl::UnauthenticatedError("AUTH source-pass-123 refused"))
          .ok());
  auto shown = scheduler_->GetJob(job, false);
  EXPECT_EQ(shown->state(), ferry::v1::JOB_STATE_FAILED);
  EXPECT_THAT(shown->error(), HasSubstr("refused"));
  EXPECT_THAT(shown->error(), Not(HasSubstr("source-pass-123")));
  EXPECT_TRUE(scheduler_->JobsToPlan().empty());
}

TEST_F(SchedulerTest, PlanningRetryIsShownScrubbedWhilePendingOnly) {
  std::string job = Submit();
  ASSERT_TRUE(
      scheduler_->SetPlanningRetry(job, "attempt 1 failed: AUTH source-pass-123 timed out").ok());
  auto shown = scheduler_->GetJob(job, false);
  EXPECT_THAT(shown->planning_retry(), HasSubstr("attempt 1 failed"));
  EXPECT_THAT(shown->planning_retry(), Not(HasSubstr("source-pass-123")));
  ASSERT_TRUE(scheduler_->SpecForPlanning(job).ok());
  ASSERT_TRUE(
      scheduler_->FailPlanning(job, absl::UnavailableError("refused"), "after 3 attempts over 5s")
          .ok());
  shown = scheduler_->GetJob(job, false);
  EXPECT_EQ(shown->error(), "planning failed after 3 attempts over 5s: refused");
  EXPECT_EQ(shown->error_code(), static_cast<int>(absl::StatusCode::kUnavailable));
  EXPECT_EQ(shown->planning_retry(), "");
  // A failed job needs no planning until it is resumed.
  EXPECT_EQ(scheduler_->SpecForPlanning(job).status().code(),
            absl::StatusCode::kFailedPrecondition);

  std::string cancelled = Submit();
  ASSERT_TRUE(scheduler_->SetPlanningRetry(cancelled, "attempt 1 failed").ok());
  ASSERT_TRUE(scheduler_->CancelJob(cancelled).ok());
  EXPECT_EQ(scheduler_->GetJob(cancelled, false)->planning_retry(), "");
  EXPECT_EQ(scheduler_->SpecForPlanning(cancelled).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(SchedulerTest, FatalShardErrorFailsTheJobAndResumeRetriesIt) {
  std::string job = Submit();
  Plan(job, 2);
  FakeAgent a = Connect(2);
  std::vector<Lease> leases = a.sender->Leases();
  ASSERT_TRUE(Finish(a, leases[0], static_cast<int>(absl::StatusCode::kResourceExhausted),
                     "OOM on the target")
                  .ok());
  auto shown = scheduler_->GetJob(job, false);
  EXPECT_EQ(shown->state(), ferry::v1::JOB_STATE_FAILED);
  EXPECT_THAT(shown->error(), HasSubstr("OOM on the target"));
  auto revokes = a.sender->Take(ControllerMessage::kRevoke);
  ASSERT_EQ(revokes.size(), 1u);
  EXPECT_EQ(revokes[0].revoke().lease_id(), leases[1].lease_id());
  ASSERT_TRUE(Return(a, leases[1], 55).ok());
  EXPECT_TRUE(a.sender->Leases().empty());

  ASSERT_TRUE(scheduler_->ResumeJob(job).ok());
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_RUNNING);
  std::vector<Lease> retried = a.sender->Leases();
  ASSERT_EQ(retried.size(), 2u);
  for (const Lease& lease : retried) ASSERT_TRUE(Finish(a, lease).ok());
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_DONE);
}

TEST_F(SchedulerTest, RetryableErrorsRequeueTheShardAFewTimes) {
  std::string job = Submit();
  Plan(job, 1);
  FakeAgent a = Connect(1);
  const int unavailable = static_cast<int>(absl::StatusCode::kUnavailable);
  ASSERT_TRUE(
      Finish(a, a.sender->Leases().at(0), static_cast<int>(absl::StatusCode::kCancelled)).ok());
  for (int i = 0; i < 5; ++i) {
    std::vector<Lease> leases = a.sender->Leases();
    ASSERT_EQ(leases.size(), 1u) << "attempt " << i;
    ASSERT_TRUE(Finish(a, leases[0], unavailable, "source unreachable").ok());
    EXPECT_EQ(State(job), ferry::v1::JOB_STATE_RUNNING);
  }
  ASSERT_TRUE(Finish(a, a.sender->Leases().at(0), unavailable, "source unreachable").ok());
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_FAILED);
}

TEST_F(SchedulerTest, PauseRevokesLeasesAndResumeContinuesFromTheCheckpoint) {
  std::string job = Submit();
  Plan(job, 1);
  FakeAgent a = Connect(1);
  Lease lease = a.sender->Leases().at(0);
  ASSERT_TRUE(scheduler_->PauseJob(job).ok());
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_PAUSED);
  ASSERT_EQ(a.sender->Take(ControllerMessage::kRevoke).size(), 1u);
  ASSERT_TRUE(Return(a, lease, 999).ok());
  EXPECT_EQ(a.sender->Take(ControllerMessage::kAck).size(), 1u);
  EXPECT_TRUE(a.sender->Leases().empty());      // Paused: nothing is leased again.
  EXPECT_TRUE(scheduler_->PauseJob(job).ok());  // Pausing twice is fine.

  ASSERT_TRUE(scheduler_->ResumeJob(job).ok());
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_RUNNING);
  std::vector<Lease> again = a.sender->Leases();
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].resume().cursor(), 999u);
  EXPECT_EQ(again[0].epoch(), 2u);
}

TEST_F(SchedulerTest, RevokedLeaseNotReturnedExpires) {
  std::string job = Submit();
  Plan(job, 1);
  FakeAgent a = Connect(1);
  ASSERT_EQ(a.sender->Leases().size(), 1u);
  ASSERT_TRUE(scheduler_->PauseJob(job).ok());
  for (int i = 0; i < 4; ++i) {
    now_ += absl::Seconds(5);
    Heartbeat(a);  // Heartbeats do not keep a revoked lease.
  }
  EXPECT_EQ(scheduler_->ExpireLeases(now_), 1);
}

TEST_F(SchedulerTest, CancelRevokesLeasesAndEndsTheJob) {
  std::string job = Submit();
  Plan(job, 2);
  FakeAgent a = Connect(1);
  Lease lease = a.sender->Leases().at(0);
  ASSERT_TRUE(scheduler_->CancelJob(job).ok());
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_CANCELLED);
  ASSERT_EQ(a.sender->Take(ControllerMessage::kRevoke).size(), 1u);
  ASSERT_TRUE(Return(a, lease, 10).ok());
  EXPECT_TRUE(a.sender->Leases().empty());
  EXPECT_EQ(scheduler_->CancelJob(job).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(scheduler_->PauseJob(job).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(scheduler_->ResumeJob(job).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(SchedulerTest, DrainingAgentGetsNoMoreLeases) {
  std::string job = Submit();
  Plan(job, 2);
  FakeAgent a = Connect(1);
  Lease lease = a.sender->Leases().at(0);
  ASSERT_TRUE(Return(a, lease, 5, /*draining=*/true).ok());
  EXPECT_TRUE(a.sender->Leases().empty());
  FakeAgent b = Connect(2);
  EXPECT_EQ(b.sender->Leases().size(), 2u);
}

TEST_F(SchedulerTest, UnknownJobIsNotFound) {
  EXPECT_EQ(scheduler_->GetJob("nope", false).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(scheduler_->CancelJob("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(scheduler_->PauseJob("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(scheduler_->ResumeJob("nope").status().code(), absl::StatusCode::kNotFound);
  ferry::v1::ListFailedKeysRequest request;
  request.set_job_id("nope");
  EXPECT_EQ(scheduler_->ListFailedKeys(request).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SchedulerTest, ReportsRatesAndEta) {
  std::string job = Submit();
  Plan(job, 1);  // 1000 estimated keys.
  FakeAgent a = Connect(1);
  Lease lease = a.sender->Leases().at(0);
  ASSERT_TRUE(Progress(a, lease, 1, 0).ok());
  now_ += absl::Seconds(2);
  ASSERT_TRUE(Progress(a, lease, 2, 200).ok());
  auto shown = scheduler_->GetJob(job, false);
  EXPECT_DOUBLE_EQ(shown->progress().keys_per_second(), 100);
  EXPECT_DOUBLE_EQ(shown->progress().eta_seconds(), 8);
}

}  // namespace
}  // namespace ferry::server
