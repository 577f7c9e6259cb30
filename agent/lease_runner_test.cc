#include "agent/lease_runner.h"

#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace ferry::agent {
namespace {

namespace pb = ::ferry::v1;

LeaseRunner::Grant TestGrant() {
  LeaseRunner::Grant grant;
  grant.lease_id = "lease-7";
  grant.epoch = 3;
  grant.resume.cursor = 100;
  grant.resume.counters.set_copied(5);
  return grant;
}

Checkpoint At(uint64_t cursor, uint64_t copied, bool done = false) {
  Checkpoint checkpoint;
  checkpoint.cursor = cursor;
  checkpoint.counters.set_copied(copied);
  checkpoint.done = done;
  return checkpoint;
}

TEST(LeaseRunnerTest, NothingNewMeansNoProgressReport) {
  LeaseRunner runner(TestGrant());
  EXPECT_TRUE(runner.TakeProgress().empty());
}

TEST(LeaseRunnerTest, ProgressCarriesTheLatestCheckpointOnceAndExpectsAnAck) {
  LeaseRunner runner(TestGrant());
  runner.RecordCheckpoint(At(200, 10));
  runner.RecordCheckpoint(At(300, 20));
  std::vector<LeaseReport> reports = runner.TakeProgress();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_TRUE(reports[0].expects_ack);
  const pb::AgentMessage::Progress& progress = reports[0].message.progress();
  EXPECT_EQ(progress.lease_id(), "lease-7");
  EXPECT_EQ(progress.epoch(), 3u);
  EXPECT_EQ(progress.checkpoint().cursor(), 300u);
  EXPECT_EQ(progress.checkpoint().counters().copied(), 20u);
  EXPECT_TRUE(runner.TakeProgress().empty());  // Reported already.
}

TEST(LeaseRunnerTest, FailedKeysAloneAreReportedAtTheLatestCheckpoint) {
  LeaseRunner runner(TestGrant());
  runner.RecordFailedKey("k1", "OOM");
  std::vector<LeaseReport> reports = runner.TakeProgress();
  ASSERT_EQ(reports.size(), 1u);
  const pb::AgentMessage::Progress& progress = reports[0].message.progress();
  ASSERT_EQ(progress.failed_keys_size(), 1);
  EXPECT_EQ(progress.failed_keys(0).key(), "k1");
  EXPECT_EQ(progress.failed_keys(0).reason(), "OOM");
  EXPECT_EQ(progress.checkpoint().cursor(), 100u);  // The resume checkpoint.
}

TEST(LeaseRunnerTest, OversizedFailedKeysGoFirstAtTheCheckpointAlreadyReported) {
  LeaseRunner runner(TestGrant());
  runner.RecordCheckpoint(At(200, 10));
  ASSERT_EQ(runner.TakeProgress().size(), 1u);
  runner.RecordCheckpoint(At(300, 20));
  const std::string big(kMaxFailedKeyBytes / 2, 'k');
  for (int i = 0; i < 3; ++i) runner.RecordFailedKey(big + std::to_string(i), "failed");
  std::vector<LeaseReport> reports = runner.TakeProgress();
  // Two keys fit in no message of 1 MiB with their overhead: one per message.
  ASSERT_EQ(reports.size(), 3u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(reports[i].message.progress().checkpoint().cursor(), 200u) << i;
    ASSERT_EQ(reports[i].message.progress().failed_keys_size(), 1) << i;
    EXPECT_EQ(reports[i].message.progress().failed_keys(0).key(), big + std::to_string(i));
  }
  EXPECT_EQ(reports[2].message.progress().checkpoint().cursor(), 300u);
  ASSERT_EQ(reports[2].message.progress().failed_keys_size(), 1);
  EXPECT_EQ(reports[2].message.progress().failed_keys(0).key(), big + "2");
}

TEST(LeaseRunnerTest, FinishedCopyReportsStatusZero) {
  LeaseRunner runner(TestGrant());
  runner.RecordCheckpoint(At(0, 42, /*done=*/true));
  std::vector<LeaseReport> reports = runner.EndReports(absl::OkStatus());
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_TRUE(reports[0].expects_ack);
  ASSERT_TRUE(reports[0].message.has_finished());
  EXPECT_EQ(reports[0].message.finished().status_code(), 0);
  EXPECT_TRUE(reports[0].message.finished().checkpoint().done());
  EXPECT_EQ(reports[0].message.finished().checkpoint().counters().copied(), 42u);
}

TEST(LeaseRunnerTest, FailedCopyReportsItsCodeAndMessage) {
  LeaseRunner runner(TestGrant());
  runner.RecordFailedKey("k", "NOPERM");
  std::vector<LeaseReport> reports =
      runner.EndReports(absl::PermissionDeniedError("NOPERM on RESTORE"));
  ASSERT_EQ(reports.size(), 1u);
  const pb::AgentMessage::ShardFinished& finished = reports[0].message.finished();
  EXPECT_EQ(finished.status_code(), static_cast<int>(absl::StatusCode::kPermissionDenied));
  EXPECT_EQ(finished.status_message(), "NOPERM on RESTORE");
  EXPECT_EQ(finished.failed_keys_size(), 1);
  EXPECT_EQ(finished.checkpoint().cursor(), 100u);
}

TEST(LeaseRunnerTest, RevokedShardIsReturnedWithoutWaitingForAnAck) {
  LeaseRunner runner(TestGrant());
  runner.RecordCheckpoint(At(250, 9));
  runner.Stop(StopReason::kRevoked);
  EXPECT_FALSE(runner.active());
  runner.Stop(StopReason::kDrain);  // The first reason sticks.
  std::vector<LeaseReport> reports = runner.EndReports(absl::CancelledError("cancelled"));
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_FALSE(reports[0].expects_ack);
  ASSERT_TRUE(reports[0].message.has_returned());
  EXPECT_FALSE(reports[0].message.returned().draining());
  EXPECT_EQ(reports[0].message.returned().checkpoint().cursor(), 250u);
}

TEST(LeaseRunnerTest, DrainedShardIsReturnedAndWaitsForTheAck) {
  LeaseRunner runner(TestGrant());
  runner.Stop(StopReason::kDrain);
  std::vector<LeaseReport> reports = runner.EndReports(absl::CancelledError("cancelled"));
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_TRUE(reports[0].expects_ack);
  EXPECT_TRUE(reports[0].message.returned().draining());
}

TEST(LeaseRunnerTest, DoneBeatsAStopThatCameTooLate) {
  LeaseRunner runner(TestGrant());
  runner.RecordCheckpoint(At(0, 1, /*done=*/true));
  runner.Stop(StopReason::kDrain);
  std::vector<LeaseReport> reports = runner.EndReports(absl::OkStatus());
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_TRUE(reports[0].message.has_finished());
}

TEST(LeaseRunnerTest, LostStreamReportsNothingAndOverridesEarlierReasons) {
  LeaseRunner runner(TestGrant());
  runner.Stop(StopReason::kDrain);
  runner.Stop(StopReason::kStreamLost);
  EXPECT_TRUE(runner.EndReports(absl::CancelledError("cancelled")).empty());
}

TEST(LeaseRunnerTest, RunsTheCopyOnItsThreadAndHandsTheResultToTheOwner) {
  absl::Notification stopped;
  LeaseRunner::Grant grant = TestGrant();
  grant.keys_per_second = 0;
  LeaseRunner runner(
      std::move(grant),
      [&](const ShardSpec&, const CopyOptions&, const Checkpoint& resume, RateLimiter* limiter,
          const std::atomic<bool>* cancel, const CopyCallbacks& callbacks) {
        EXPECT_EQ(resume.cursor, 100u);
        EXPECT_NE(limiter, nullptr);
        callbacks.on_checkpoint(At(400, 8));
        callbacks.on_failed_key("bad", "too big");
        while (!cancel->load()) absl::SleepFor(absl::Milliseconds(1));
        return absl::CancelledError("cancelled");
      });
  std::vector<LeaseReport> end;
  runner.Start([&](LeaseRunner* ended, const absl::Status& status) {
    EXPECT_EQ(ended, &runner);
    EXPECT_TRUE(absl::IsCancelled(status));
    end = ended->EndReports(status);
    ended->MarkEnded();
    stopped.Notify();
  });
  EXPECT_TRUE(runner.active());
  runner.Stop(StopReason::kDrain);
  ASSERT_TRUE(stopped.WaitForNotificationWithTimeout(absl::Seconds(10)));
  runner.Join();
  EXPECT_TRUE(runner.ended());
  EXPECT_FALSE(runner.active());
  ASSERT_EQ(end.size(), 1u);
  const pb::AgentMessage::Returned& returned = end[0].message.returned();
  EXPECT_EQ(returned.checkpoint().cursor(), 400u);
  ASSERT_EQ(returned.failed_keys_size(), 1);
  EXPECT_EQ(returned.failed_keys(0).key(), "bad");
}

}  // namespace
}  // namespace ferry::agent
