#include "agent/metrics.h"

#include "common/metrics/process.h"
#include "common/redis/errors.h"

namespace ferry::agent {
namespace {

const char* OutcomeName(LeaseOutcome outcome) {
  switch (outcome) {
    case LeaseOutcome::kFinished:
      return "finished";
    case LeaseOutcome::kFailed:
      return "failed";
    case LeaseOutcome::kHandedBack:
      return "handed_back";
    case LeaseOutcome::kStreamLost:
      return "stream_lost";
  }
  return "unknown";
}

const char* ClassName(redis::ErrorClass error_class) {
  switch (error_class) {
    case redis::ErrorClass::kTransient:
      return "transient";
    case redis::ErrorClass::kRedirect:
      return "redirect";
    case redis::ErrorClass::kVersion:
      return "version";
    case redis::ErrorClass::kPerKey:
      return "per_key";
    case redis::ErrorClass::kFatal:
      return "fatal";
  }
  return "unknown";
}

// Series of leases that run at once stay few; these bound what a bug could add.
constexpr size_t kMaxLeaseSeries = 256;

void AddDelta(metrics::Counter* counter, uint64_t previous, uint64_t latest) {
  if (counter != nullptr && latest > previous)
    counter->Increment(static_cast<double>(latest - previous));
}

}  // namespace

AgentMetrics::AgentMetrics(metrics::Registry& registry, int slots)
    : running_(
          registry.AddGauge("ferry_agent_leases_running", "Leases whose copy runs now.")->Get()),
      connected_(registry
                     .AddGauge("ferry_agent_controller_connected",
                               "1 while registered on a stream to the controller.")
                     ->Get()),
      reconnects_(registry
                      .AddCounter("ferry_agent_controller_reconnects_total",
                                  "Connection attempts that failed or streams that ended.")
                      ->Get()),
      keys_scanned_(registry.AddCounter("ferry_agent_keys_scanned_total",
                                        "Keys this agent scanned, by job.", {"job_id"})),
      keys_copied_(registry.AddCounter("ferry_agent_keys_copied_total",
                                       "Keys this agent wrote to the target, by job.", {"job_id"})),
      bytes_copied_(registry.AddCounter("ferry_agent_bytes_copied_total",
                                        "Payload bytes this agent wrote, by job.", {"job_id"})),
      lease_scanned_(registry.AddGauge("ferry_agent_lease_keys_scanned",
                                       "Keys the running lease's shard has scanned so far.",
                                       {"job_id", "lease"}, kMaxLeaseSeries)),
      lease_copied_(registry.AddGauge("ferry_agent_lease_keys_copied",
                                      "Keys the running lease's shard has copied so far.",
                                      {"job_id", "lease"}, kMaxLeaseSeries)),
      batch_seconds_(registry
                         .AddHistogram("ferry_agent_batch_seconds",
                                       "Time of one batch of a lease, read from the source and "
                                       "written to the target (the first: since the lease "
                                       "started).",
                                       {}, metrics::LatencyBounds())
                         ->Get()),
      ends_(registry.AddCounter("ferry_agent_lease_ends_total",
                                "Leases whose copy ended, by outcome.", {"outcome"})),
      errors_(registry.AddCounter("ferry_agent_shard_errors_total",
                                  "Shard copies that ended with an error, by error class "
                                  "(transient and redirect ones are retried by the controller).",
                                  {"class"})),
      shard_retries_(registry.AddCounter("ferry_agent_shard_retries_total",
                                         "Times a running lease's copy reconnected and went on "
                                         "from its last checkpoint, by the error's class.",
                                         {"class"})),
      source_io_(registry, "source"),
      target_io_(registry, "target") {
  registry.AddGauge("ferry_agent_slots", "Shards this agent runs at once.")->Get()->Set(slots);
  metrics::AddProcessCollector(registry);
}

void AgentMetrics::ShardRetried(const absl::Status& status) {
  shard_retries_->WithLabels({ClassName(redis::Classify(status))})->Increment();
}

SideIoMetrics::SideIoMetrics(metrics::Registry& registry, const std::string& side)
    : round_trip_(registry
                      .AddHistogram("ferry_agent_redis_round_trip_seconds",
                                    "Time from sending a pipeline of commands to a side (source "
                                    "or target) until its last reply arrived.",
                                    {"side"}, metrics::LatencyBounds())
                      ->WithLabels({side})) {
  metrics::Family<metrics::Counter>* retries =
      registry.AddCounter("ferry_agent_redis_retries_total",
                          "Commands sent to a side again, by the error's class (redirect: MOVED "
                          "or ASK; transient) and reason (moved, ask, busy: TRYAGAIN, "
                          "CLUSTERDOWN, LOADING or MASTERDOWN; connection: lost).",
                          {"side", "class", "reason"});
  retries_[static_cast<int>(redis::RetryReason::kMoved)] =
      retries->WithLabels({side, "redirect", "moved"});
  retries_[static_cast<int>(redis::RetryReason::kAsk)] =
      retries->WithLabels({side, "redirect", "ask"});
  retries_[static_cast<int>(redis::RetryReason::kBusy)] =
      retries->WithLabels({side, "transient", "busy"});
  retries_[static_cast<int>(redis::RetryReason::kConnection)] =
      retries->WithLabels({side, "transient", "connection"});
}

void SideIoMetrics::RoundTrip(absl::Duration elapsed) {
  round_trip_->Observe(absl::ToDoubleSeconds(elapsed));
}

void SideIoMetrics::Retry(redis::RetryReason reason) {
  retries_[static_cast<int>(reason)]->Increment();
}

LeaseMetrics AgentMetrics::LeaseStarted(const std::string& job_id, const std::string& lease_id) {
  running_->Add(1);
  LeaseMetrics lease;
  lease.keys_scanned = keys_scanned_->WithLabels({job_id});
  lease.keys_copied = keys_copied_->WithLabels({job_id});
  lease.bytes_copied = bytes_copied_->WithLabels({job_id});
  lease.lease_scanned = lease_scanned_->WithLabels({job_id, lease_id});
  lease.lease_copied = lease_copied_->WithLabels({job_id, lease_id});
  lease.batch_seconds = batch_seconds_;
  return lease;
}

void AgentMetrics::LeaseEnded(const std::string& job_id, const std::string& lease_id,
                              LeaseOutcome outcome, const absl::Status& status) {
  running_->Add(-1);
  lease_scanned_->Remove({job_id, lease_id});
  lease_copied_->Remove({job_id, lease_id});
  ends_->WithLabels({OutcomeName(outcome)})->Increment();
  if (!status.ok() && !absl::IsCancelled(status)) {
    errors_->WithLabels({ClassName(redis::Classify(status))})->Increment();
  }
}

void AgentMetrics::Checkpointed(const LeaseMetrics& lease, const ferry::v1::Counters& previous,
                                const ferry::v1::Counters& latest) {
  AddDelta(lease.keys_scanned, previous.scanned(), latest.scanned());
  AddDelta(lease.keys_copied, previous.copied(), latest.copied());
  AddDelta(lease.bytes_copied, previous.bytes(), latest.bytes());
  if (lease.lease_scanned != nullptr)
    lease.lease_scanned->Set(static_cast<double>(latest.scanned()));
  if (lease.lease_copied != nullptr) lease.lease_copied->Set(static_cast<double>(latest.copied()));
}

void AgentMetrics::BatchDone(const LeaseMetrics& lease, double seconds) {
  if (lease.batch_seconds != nullptr) lease.batch_seconds->Observe(seconds);
}

}  // namespace ferry::agent
