// The controller's scrape-time families from Job messages: states, shards, counters, live nodes
// (whose labels never carry a URI's credentials), agents; and promtool-friendly names.

#include "server/metrics.h"

#include "common/metrics/exposition.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

ferry::v1::Job RunningLiveJob() {
  ferry::v1::Job job;
  job.set_id("job-a");
  job.set_state(ferry::v1::JOB_STATE_LIVE);
  ferry::v1::JobProgress& p = *job.mutable_progress();
  p.set_shards_total(5);
  p.set_shards_done(2);
  p.set_shards_running(2);
  p.mutable_counters()->set_copied(1200);
  p.mutable_counters()->set_scanned(1300);
  p.mutable_counters()->set_bytes(64000);
  p.mutable_counters()->set_failed(3);
  p.set_keys_per_second(250.5);
  ferry::v1::NodeLive& node = *job.mutable_live()->add_nodes();
  node.set_node("redis://user:s3cret-Pw@10.0.0.5:6380/0");  // How a standalone source is named.
  node.set_db(0);
  node.set_in_sync(true);
  node.mutable_status()->set_oldest_dirty_ms(1500);
  node.mutable_status()->set_dirty_keys(42);
  node.mutable_status()->set_gaps(1);
  node.mutable_status()->set_events_per_second(99);
  return job;
}

TEST(ControllerMetricsTest, JobsShardsCountersLiveAndAgents) {
  ferry::v1::Job done;
  done.set_id("job-b");
  done.set_state(ferry::v1::JOB_STATE_DONE);
  ferry::v1::AgentInfo agent;
  agent.set_slots(4);
  const std::string text =
      metrics::TextExposition(ControllerFamilies({RunningLiveJob(), done}, {agent, agent}));
  EXPECT_THAT(text, HasSubstr("ferry_controller_jobs{state=\"live\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("ferry_controller_jobs{state=\"done\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("ferry_controller_jobs{state=\"failed\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("ferry_controller_job_state{job_id=\"job-a\",state=\"live\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("ferry_controller_shards{job_id=\"job-a\",state=\"pending\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("ferry_controller_shards{job_id=\"job-a\",state=\"leased\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("ferry_controller_job_keys_copied_total{job_id=\"job-a\"} 1200\n"));
  EXPECT_THAT(text, HasSubstr("ferry_controller_job_keys_failed_total{job_id=\"job-a\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("ferry_controller_job_bytes_copied_total{job_id=\"job-a\"} 64000\n"));
  EXPECT_THAT(text, HasSubstr("ferry_controller_job_keys_per_second{job_id=\"job-a\"} 250.5\n"));
  const std::string node = "{job_id=\"job-a\",node=\"10.0.0.5:6380\",db=\"0\"}";
  EXPECT_THAT(text, HasSubstr("ferry_controller_live_lag_seconds" + node + " 1.5\n"));
  EXPECT_THAT(text, HasSubstr("ferry_controller_live_dirty_keys" + node + " 42\n"));
  EXPECT_THAT(text, HasSubstr("ferry_controller_live_gaps_total" + node + " 1\n"));
  EXPECT_THAT(text, HasSubstr("ferry_controller_live_in_sync" + node + " 1\n"));
  EXPECT_THAT(text, HasSubstr("ferry_controller_agents_connected 2\n"));
  EXPECT_THAT(text, HasSubstr("ferry_controller_agent_slots 8\n"));
  EXPECT_THAT(text, Not(HasSubstr("s3cret")));
  EXPECT_THAT(text, Not(HasSubstr("user")));
}

TEST(ControllerMetricsTest, PerJobSeriesAreBounded) {
  std::vector<ferry::v1::Job> jobs(kMaxJobSeries + 20);
  for (size_t i = 0; i < jobs.size(); ++i) {
    jobs[i].set_id("job-" + std::to_string(i));
    jobs[i].set_state(ferry::v1::JOB_STATE_DONE);
  }
  const std::string text = metrics::TextExposition(ControllerFamilies(jobs, {}));
  EXPECT_THAT(text, HasSubstr("job_id=\"job-" + std::to_string(kMaxJobSeries - 1) + "\""));
  EXPECT_THAT(text, Not(HasSubstr("job_id=\"job-" + std::to_string(kMaxJobSeries) + "\"")));
  EXPECT_THAT(text, HasSubstr("ferry_controller_jobs{state=\"done\"} " +
                              std::to_string(jobs.size()) + "\n"));
}

TEST(ControllerMetricsTest, SchedulerInstrumentsAreRegistered) {
  metrics::Registry registry;
  SchedulerMetrics instruments(registry);
  instruments.lease_grants->Increment();
  instruments.store_write_checkpoint->Observe(0.002);
  const std::string text = metrics::TextExposition(registry);
  EXPECT_THAT(text, HasSubstr("ferry_controller_lease_grants_total 1\n"));
  EXPECT_THAT(text, HasSubstr("ferry_controller_lease_expiries_total 0\n"));
  EXPECT_THAT(text, HasSubstr("ferry_controller_store_write_seconds_count{op=\"checkpoint\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("ferry_controller_store_write_seconds_count{op=\"grant\"} 0\n"));
}

}  // namespace
}  // namespace ferry::server
