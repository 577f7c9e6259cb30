// The agent's metrics as a lease runs: job counters grow by what the lease did since its resume
// checkpoint, the lease's own series live only while it runs, ends and errors are counted.

#include "agent/metrics.h"

#include "absl/synchronization/notification.h"
#include "agent/lease_runner.h"
#include "common/metrics/exposition.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

Checkpoint Copied(uint64_t scanned, uint64_t copied) {
  Checkpoint checkpoint;
  checkpoint.counters.set_scanned(scanned);
  checkpoint.counters.set_copied(copied);
  checkpoint.counters.set_bytes(copied * 10);
  return checkpoint;
}

TEST(AgentMetricsTest, ALeaseCountsItsWorkAndItsEnd) {
  metrics::Registry registry;
  AgentMetrics agent_metrics(registry, 3);
  LeaseRunner::Grant grant;
  grant.lease_id = "job-1-4-2";
  grant.job_id = "job-1";
  grant.resume = Copied(6, 5);  // Work of an earlier lease: not this agent's.
  grant.metrics = &agent_metrics;
  absl::Notification checkpointed;
  absl::Notification go_on;
  LeaseRunner runner(std::move(grant),
                     [&](const ShardSpec&, const CopyOptions&, const Checkpoint&, RateLimiter*,
                         const std::atomic<bool>*, const CopyCallbacks& callbacks) {
                       callbacks.on_batch();
                       callbacks.on_checkpoint(Copied(10, 8));
                       callbacks.on_retry(absl::UnavailableError("connection reset"));
                       callbacks.on_batch();
                       callbacks.on_checkpoint(Copied(25, 20));
                       checkpointed.Notify();
                       go_on.WaitForNotification();
                       return absl::UnavailableError("connection reset");
                     });
  absl::Notification ended;
  runner.Start([&](LeaseRunner* run, const absl::Status& status) {
    run->EndReports(status);
    run->MarkEnded();
    ended.Notify();
  });
  ASSERT_TRUE(checkpointed.WaitForNotificationWithTimeout(absl::Seconds(10)));
  std::string text = metrics::TextExposition(registry);
  EXPECT_THAT(text, HasSubstr("ferry_agent_leases_running 1\n"));
  EXPECT_THAT(text, HasSubstr("ferry_agent_slots 3\n"));
  EXPECT_THAT(text, HasSubstr("ferry_agent_keys_copied_total{job_id=\"job-1\"} 15\n"));
  EXPECT_THAT(text, HasSubstr("ferry_agent_keys_scanned_total{job_id=\"job-1\"} 19\n"));
  EXPECT_THAT(text, HasSubstr("ferry_agent_bytes_copied_total{job_id=\"job-1\"} 150\n"));
  EXPECT_THAT(
      text, HasSubstr("ferry_agent_lease_keys_copied{job_id=\"job-1\",lease=\"job-1-4-2\"} 20\n"));
  // Both batches: the first timed from the lease's start.
  EXPECT_THAT(text, HasSubstr("ferry_agent_batch_seconds_count 2\n"));
  EXPECT_THAT(text, HasSubstr("ferry_agent_shard_retries_total{class=\"transient\"} 1\n"));
  go_on.Notify();
  ASSERT_TRUE(ended.WaitForNotificationWithTimeout(absl::Seconds(10)));
  runner.Join();
  text = metrics::TextExposition(registry);
  EXPECT_THAT(text, HasSubstr("ferry_agent_leases_running 0\n"));
  EXPECT_THAT(text, Not(HasSubstr("lease=\"job-1-4-2\"")));
  EXPECT_THAT(text, HasSubstr("ferry_agent_lease_ends_total{outcome=\"failed\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("ferry_agent_shard_errors_total{class=\"transient\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("ferry_agent_keys_copied_total{job_id=\"job-1\"} 15\n"));
}

TEST(AgentMetricsTest, AHandedBackLeaseIsNoError) {
  metrics::Registry registry;
  AgentMetrics agent_metrics(registry, 1);
  LeaseMetrics lease = agent_metrics.LeaseStarted("job-2", "job-2-1-1");
  AgentMetrics::Checkpointed(lease, Copied(0, 0).counters, Copied(4, 4).counters);
  agent_metrics.LeaseEnded("job-2", "job-2-1-1", LeaseOutcome::kHandedBack,
                           absl::CancelledError("revoked"));
  agent_metrics.Reconnecting();
  agent_metrics.SetConnected(true);
  const std::string text = metrics::TextExposition(registry);
  EXPECT_THAT(text, HasSubstr("ferry_agent_lease_ends_total{outcome=\"handed_back\"} 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("ferry_agent_shard_errors_total{")));
  EXPECT_THAT(text, HasSubstr("ferry_agent_controller_reconnects_total 1\n"));
  EXPECT_THAT(text, HasSubstr("ferry_agent_controller_connected 1\n"));
  EXPECT_THAT(text, HasSubstr("process_resident_memory_bytes "));
}

TEST(AgentMetricsTest, EachSideCountsItsRoundTripsAndRetriesByClassAndReason) {
  metrics::Registry registry;
  AgentMetrics agent_metrics(registry, 1);
  agent_metrics.source_io()->RoundTrip(absl::Milliseconds(3));
  agent_metrics.source_io()->RoundTrip(absl::Milliseconds(30));
  agent_metrics.target_io()->RoundTrip(absl::Seconds(2));
  agent_metrics.target_io()->Retry(redis::RetryReason::kMoved);
  agent_metrics.target_io()->Retry(redis::RetryReason::kMoved);
  agent_metrics.target_io()->Retry(redis::RetryReason::kConnection);
  agent_metrics.source_io()->Retry(redis::RetryReason::kBusy);
  const std::string text = metrics::TextExposition(registry);
  EXPECT_THAT(text, HasSubstr("ferry_agent_redis_round_trip_seconds_count{side=\"source\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("ferry_agent_redis_round_trip_seconds_bucket{side=\"source\","
                              "le=\"0.005\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("ferry_agent_redis_round_trip_seconds_count{side=\"target\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("ferry_agent_redis_retries_total{side=\"target\",class=\"redirect\","
                              "reason=\"moved\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("ferry_agent_redis_retries_total{side=\"target\",class=\"transient\","
                              "reason=\"connection\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("ferry_agent_redis_retries_total{side=\"source\",class=\"transient\","
                              "reason=\"busy\"} 1\n"));
}

}  // namespace
}  // namespace ferry::agent
