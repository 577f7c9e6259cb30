#include "cli/client.h"

#include "gtest/gtest.h"

namespace ferry::cli {
namespace {

namespace pb = ::ferry::v1;

pb::Job JobIn(pb::JobState state, absl::StatusCode code = absl::StatusCode::kOk) {
  pb::Job job;
  job.set_state(state);
  job.set_error_code(static_cast<int>(code));
  if (code != absl::StatusCode::kOk) job.set_error("why");
  return job;
}

TEST(ExitCodeForJobTest, EndedJobsMapToTheDocumentedCodes) {
  EXPECT_EQ(ExitCodeForJob(JobIn(pb::JOB_STATE_DONE)), 0);
  EXPECT_EQ(ExitCodeForJob(JobIn(pb::JOB_STATE_DONE_WITH_ERRORS)), 1);
  EXPECT_EQ(ExitCodeForJob(JobIn(pb::JOB_STATE_CANCELLED)), 130);
}

TEST(ExitCodeForJobTest, AFailedJobExitsByItsErrorButNeverWithZero) {
  EXPECT_EQ(ExitCodeForJob(JobIn(pb::JOB_STATE_FAILED, absl::StatusCode::kPermissionDenied)), 3);
  EXPECT_EQ(ExitCodeForJob(JobIn(pb::JOB_STATE_FAILED, absl::StatusCode::kInvalidArgument)), 2);
  EXPECT_EQ(ExitCodeForJob(JobIn(pb::JOB_STATE_FAILED, absl::StatusCode::kResourceExhausted)), 1);
  EXPECT_EQ(ExitCodeForJob(JobIn(pb::JOB_STATE_FAILED)), 1);  // No error code recorded.
}

TEST(ExitCodeForJobTest, AJobThatHasNotEndedIsNoSuccess) {
  EXPECT_EQ(ExitCodeForJob(JobIn(pb::JOB_STATE_RUNNING)), 1);
  EXPECT_EQ(ExitCodeForJob(JobIn(pb::JOB_STATE_PAUSED)), 1);
}

TEST(StateNameTest, NamesEveryState) {
  EXPECT_EQ(StateName(pb::JOB_STATE_PENDING), "pending");
  EXPECT_EQ(StateName(pb::JOB_STATE_RUNNING), "running");
  EXPECT_EQ(StateName(pb::JOB_STATE_PAUSED), "paused");
  EXPECT_EQ(StateName(pb::JOB_STATE_DONE), "done");
  EXPECT_EQ(StateName(pb::JOB_STATE_DONE_WITH_ERRORS), "done-with-errors");
  EXPECT_EQ(StateName(pb::JOB_STATE_FAILED), "failed");
  EXPECT_EQ(StateName(pb::JOB_STATE_CANCELLED), "cancelled");
  EXPECT_EQ(StateName(pb::JOB_STATE_LIVE), "live");
  EXPECT_EQ(StateName(pb::JOB_STATE_CUTOVER), "cutover");
  EXPECT_EQ(StateName(pb::JOB_STATE_CUTOVER_READY), "cutover-ready");
  EXPECT_EQ(StateName(pb::JOB_STATE_UNSPECIFIED), "unknown");
}

TEST(ExitCodeForJobTest, ALiveJobSucceedsOnlyOnceItsCutoverIsReady) {
  EXPECT_EQ(ExitCodeForJob(JobIn(pb::JOB_STATE_CUTOVER_READY)), 0);
  EXPECT_EQ(ExitCodeForJob(JobIn(pb::JOB_STATE_LIVE)), 1);
  EXPECT_EQ(ExitCodeForJob(JobIn(pb::JOB_STATE_CUTOVER)), 1);
}

TEST(WatchEndsTest, AtTheEndedStatesAndACutoverReadyNotWhileLive) {
  for (pb::JobState state :
       {pb::JOB_STATE_DONE, pb::JOB_STATE_DONE_WITH_ERRORS, pb::JOB_STATE_FAILED,
        pb::JOB_STATE_CANCELLED, pb::JOB_STATE_CUTOVER_READY}) {
    EXPECT_TRUE(WatchEnds(state)) << StateName(state);
  }
  for (pb::JobState state : {pb::JOB_STATE_PENDING, pb::JOB_STATE_RUNNING, pb::JOB_STATE_PAUSED,
                             pb::JOB_STATE_LIVE, pb::JOB_STATE_CUTOVER}) {
    EXPECT_FALSE(WatchEnds(state)) << StateName(state);
  }
}

TEST(SnapshotOfJobTest, CarriesTheStateAndTheLiveProgressOfALiveJob) {
  pb::Job job = JobIn(pb::JOB_STATE_LIVE);
  ProgressSnapshot copy = SnapshotOfJob(job, absl::Now());
  EXPECT_EQ(copy.state, pb::JOB_STATE_LIVE);
  EXPECT_FALSE(copy.live.has_value());  // Not a live job: no live line.
  job.mutable_spec()->set_live(true);
  job.mutable_live()->set_dirty_keys(7);
  ProgressSnapshot live = SnapshotOfJob(job, absl::Now());
  ASSERT_TRUE(live.live.has_value());
  EXPECT_EQ(live.live->dirty_keys(), 7u);
}

}  // namespace
}  // namespace ferry::cli
