#include "server/metrics.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/scheduler.h"

namespace ferry::server {
namespace {

using metrics::FamilySnapshot;
using metrics::MetricType;

FamilySnapshot Family(std::string name, std::string help, MetricType type,
                      std::vector<std::string> labels) {
  FamilySnapshot family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  family.label_names = std::move(labels);
  return family;
}

// "JOB_STATE_DONE_WITH_ERRORS" -> "done_with_errors".
std::string StateName(ferry::v1::JobState state) {
  return absl::AsciiStrToLower(absl::StripPrefix(ferry::v1::JobState_Name(state), "JOB_STATE_"));
}

// A node label is host:port; the one case where the scheduler names a node by the job's URI
// (a standalone source) is cut down to its host:port, so no user or password can get in.
std::string NodeLabel(const std::string& node) {
  absl::string_view rest = node;
  if (const size_t scheme = rest.find("://"); scheme != absl::string_view::npos) {
    rest.remove_prefix(scheme + 3);
  }
  if (const size_t at = rest.rfind('@'); at != absl::string_view::npos) rest.remove_prefix(at + 1);
  if (const size_t end = rest.find_first_of("/?"); end != absl::string_view::npos) {
    rest = rest.substr(0, end);
  }
  return std::string(rest);
}

void AddJobFamilies(const std::vector<ferry::v1::Job>& jobs, std::vector<FamilySnapshot>& out) {
  FamilySnapshot by_state = Family("ferry_controller_jobs", "Jobs the controller knows, by state.",
                                   MetricType::kGauge, {"state"});
  for (int s = ferry::v1::JOB_STATE_PENDING; s <= ferry::v1::JobState_MAX; ++s) {
    if (!ferry::v1::JobState_IsValid(s)) continue;
    const auto state = static_cast<ferry::v1::JobState>(s);
    by_state.Add({StateName(state)},
                 std::count_if(jobs.begin(), jobs.end(),
                               [&](const ferry::v1::Job& job) { return job.state() == state; }));
  }
  out.push_back(std::move(by_state));

  const std::vector<std::string> job = {"job_id"};
  FamilySnapshot job_state = Family("ferry_controller_job_state", "1 for the state each job is in.",
                                    MetricType::kGauge, {"job_id", "state"});
  FamilySnapshot shards = Family("ferry_controller_shards", "Shards of each job, by state.",
                                 MetricType::kGauge, {"job_id", "state"});
  FamilySnapshot scanned =
      Family("ferry_controller_job_keys_scanned_total",
             "Keys SCAN returned, over the job's checkpoints.", MetricType::kCounter, job);
  FamilySnapshot copied =
      Family("ferry_controller_job_keys_copied_total",
             "Distinct source keys the target accepted, over the job's checkpoints.",
             MetricType::kCounter, job);
  FamilySnapshot resent =
      Family("ferry_controller_job_writes_resent_total",
             "Writes of keys a shard had already written (SCAN returned them again).",
             MetricType::kCounter, job);
  FamilySnapshot failed =
      Family("ferry_controller_job_keys_failed_total",
             "Keys that could not be copied (ferry status --failed).", MetricType::kCounter, job);
  FamilySnapshot bytes = Family("ferry_controller_job_bytes_copied_total",
                                "Payload bytes written to the target.", MetricType::kCounter, job);
  FamilySnapshot estimated =
      Family("ferry_controller_job_estimated_keys",
             "Keys in the source when the job was planned (an estimate).", MetricType::kGauge, job);
  FamilySnapshot keys_rate =
      Family("ferry_controller_job_keys_per_second",
             "Scanned keys per second over the last few seconds.", MetricType::kGauge, job);
  FamilySnapshot bytes_rate =
      Family("ferry_controller_job_bytes_per_second",
             "Written bytes per second over the last few seconds.", MetricType::kGauge, job);
  for (size_t i = 0; i < jobs.size() && i < kMaxJobSeries; ++i) {
    const ferry::v1::Job& j = jobs[i];
    const ferry::v1::JobProgress& p = j.progress();
    job_state.Add({j.id(), StateName(j.state())}, 1);
    const int pending =
        std::max(0, p.shards_total() - p.shards_done() - p.shards_running() - p.shards_failed());
    shards.Add({j.id(), "pending"}, pending);
    shards.Add({j.id(), "leased"}, p.shards_running());
    shards.Add({j.id(), "done"}, p.shards_done());
    shards.Add({j.id(), "failed"}, p.shards_failed());
    scanned.Add({j.id()}, static_cast<double>(p.counters().scanned()));
    copied.Add({j.id()}, static_cast<double>(p.counters().copied()));
    resent.Add({j.id()}, static_cast<double>(p.counters().resent()));
    failed.Add({j.id()}, static_cast<double>(p.counters().failed()));
    bytes.Add({j.id()}, static_cast<double>(p.counters().bytes()));
    estimated.Add({j.id()}, static_cast<double>(p.estimated_keys()));
    keys_rate.Add({j.id()}, p.keys_per_second());
    bytes_rate.Add({j.id()}, p.bytes_per_second());
  }
  for (FamilySnapshot* family : {&job_state, &shards, &scanned, &copied, &resent, &failed, &bytes,
                                 &estimated, &keys_rate, &bytes_rate}) {
    out.push_back(std::move(*family));
  }
}

void AddLiveFamilies(const std::vector<ferry::v1::Job>& jobs, std::vector<FamilySnapshot>& out) {
  const std::vector<std::string> labels = {"job_id", "node", "db"};
  FamilySnapshot lag =
      Family("ferry_controller_live_lag_seconds", "Age of the oldest unprocessed keyspace event.",
             MetricType::kGauge, labels);
  FamilySnapshot events =
      Family("ferry_controller_live_events_per_second",
             "Keyspace events per second over the last few seconds.", MetricType::kGauge, labels);
  FamilySnapshot dirty =
      Family("ferry_controller_live_dirty_keys", "Dirty keys waiting to be applied to the target.",
             MetricType::kGauge, labels);
  FamilySnapshot gaps = Family("ferry_controller_live_gaps_total",
                               "Gaps (lost events) the node's current watch lease found.",
                               MetricType::kCounter, labels);
  FamilySnapshot in_sync = Family("ferry_controller_live_in_sync",
                                  "1 when the node is subscribed, without gap, keys applied.",
                                  MetricType::kGauge, labels);
  for (size_t i = 0; i < jobs.size() && i < kMaxJobSeries; ++i) {
    for (const ferry::v1::NodeLive& node : jobs[i].live().nodes()) {
      std::vector<std::string> values = {jobs[i].id(), NodeLabel(node.node()),
                                         absl::StrCat(node.db())};
      const ferry::v1::LiveStatus& s = node.status();
      lag.Add(values, static_cast<double>(s.oldest_dirty_ms()) / 1000.0);
      events.Add(values, s.events_per_second());
      dirty.Add(values, static_cast<double>(s.dirty_keys()));
      gaps.Add(values, static_cast<double>(s.gaps()));
      in_sync.Add(std::move(values), node.in_sync() ? 1 : 0);
    }
  }
  for (FamilySnapshot* family : {&lag, &events, &dirty, &gaps, &in_sync}) {
    out.push_back(std::move(*family));
  }
}

}  // namespace

SchedulerMetrics::SchedulerMetrics(metrics::Registry& registry)
    : lease_grants(
          registry
              .AddCounter("ferry_controller_lease_grants_total", "Shard leases granted to agents.")
              ->Get()),
      lease_expiries(registry
                         .AddCounter("ferry_controller_lease_expiries_total",
                                     "Leases taken back because their agent went silent.")
                         ->Get()),
      shard_retries(registry
                        .AddCounter("ferry_controller_shard_retries_total",
                                    "Shards put back in the queue after a retryable error.")
                        ->Get()) {
  metrics::Family<metrics::Histogram>* writes = registry.AddHistogram(
      "ferry_controller_store_write_seconds",
      "Time to commit one shard update to the SQLite state (op: grant or checkpoint).", {"op"},
      metrics::LatencyBounds());
  store_write_grant = writes->WithLabels({"grant"});
  store_write_checkpoint = writes->WithLabels({"checkpoint"});
}

std::vector<FamilySnapshot> ControllerFamilies(const std::vector<ferry::v1::Job>& jobs,
                                               const std::vector<ferry::v1::AgentInfo>& agents) {
  std::vector<FamilySnapshot> out;
  AddJobFamilies(jobs, out);
  AddLiveFamilies(jobs, out);
  FamilySnapshot connected = Family("ferry_controller_agents_connected",
                                    "Agents with an open stream.", MetricType::kGauge, {});
  connected.Add({}, static_cast<double>(agents.size()));
  FamilySnapshot slots = Family("ferry_controller_agent_slots",
                                "Shard slots over the connected agents.", MetricType::kGauge, {});
  double total_slots = 0;
  for (const ferry::v1::AgentInfo& agent : agents) total_slots += agent.slots();
  slots.Add({}, total_slots);
  out.push_back(std::move(connected));
  out.push_back(std::move(slots));
  return out;
}

void AddControllerCollector(metrics::Registry& registry, Scheduler* scheduler) {
  registry.AddCollector([scheduler](std::vector<FamilySnapshot>& out) {
    for (FamilySnapshot& family :
         ControllerFamilies(scheduler->ListJobs(), scheduler->ListAgents())) {
      out.push_back(std::move(family));
    }
  });
}

}  // namespace ferry::server
