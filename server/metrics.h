#pragma once

// The controller's Prometheus metrics (README "Metrics and logs"). Counters and the store-write
// histogram are updated by the Scheduler as things happen; everything else (jobs, shards,
// progress, rates, live sync, agents) is made from Scheduler::ListJobs() and ListAgents() when
// /metrics is scraped, so it can never drift from what `ferry status` shows.
// Labels: job_id, state, op, and for live jobs node (host:port) and db. Never a key or a secret.

#include <cstddef>
#include <vector>

#include "common/metrics/registry.h"
#include "ferry/v1/ferry.pb.h"

namespace ferry::server {

class Scheduler;

// Per-job series are exported for the newest this many jobs (all jobs count in
// ferry_controller_jobs).
inline constexpr size_t kMaxJobSeries = 100;

// The Scheduler's own instruments; registered in (and owned by) the registry given.
struct SchedulerMetrics {
  explicit SchedulerMetrics(metrics::Registry& registry);

  metrics::Counter* lease_grants;
  metrics::Counter* lease_expiries;
  metrics::Counter* shard_retries;
  // Seconds one JobStore::UpdateShard took: a lease grant, a checkpoint (reports, hand-backs,
  // requeues).
  metrics::Histogram* store_write_grant;
  metrics::Histogram* store_write_checkpoint;
};

// What the collector exports for these jobs (newest first, as ListJobs) and agents.
std::vector<metrics::FamilySnapshot> ControllerFamilies(
    const std::vector<ferry::v1::Job>& jobs, const std::vector<ferry::v1::AgentInfo>& agents);

// Adds the scrape-time collector over `scheduler`, which must outlive every scrape.
void AddControllerCollector(metrics::Registry& registry, Scheduler* scheduler);

}  // namespace ferry::server
