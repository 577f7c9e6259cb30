#pragma once

// The agent's Prometheus metrics (README "Metrics and logs"): leases running, per-lease and
// per-job progress from each lease's checkpoints, how leases end and the classes of the errors
// that ended them, batch times, the controller connection, and the process's RSS. Labels:
// job_id, lease (only while the lease runs), outcome, class. Never a key or a secret.

#include <string>

#include "absl/status/status.h"
#include "common/metrics/registry.h"
#include "common/redis/io_observer.h"
#include "ferry/v1/ferry.pb.h"

namespace ferry::agent {

// The instruments of one lease, while it runs. Thread-safe (like the metrics).
struct LeaseMetrics {
  metrics::Counter* keys_scanned = nullptr;  // Of the job, on this agent.
  metrics::Counter* keys_copied = nullptr;
  metrics::Counter* bytes_copied = nullptr;
  metrics::Gauge* lease_scanned = nullptr;  // The shard's totals at its last checkpoint.
  metrics::Gauge* lease_copied = nullptr;
  metrics::Histogram* batch_seconds = nullptr;
};

// How a lease's copy ended.
enum class LeaseOutcome { kFinished, kFailed, kHandedBack, kStreamLost };

// The round trips and retries of one side's connections (the job's source or its target).
class SideIoMetrics : public redis::IoObserver {
 public:
  SideIoMetrics(metrics::Registry& registry, const std::string& side);
  void RoundTrip(absl::Duration elapsed) override;
  void Retry(redis::RetryReason reason) override;

 private:
  metrics::Histogram* const round_trip_;
  metrics::Counter* retries_[4];  // By RetryReason.
};

// Registered in (and owned by) `registry`, which must outlive it. Thread-safe.
class AgentMetrics {
 public:
  AgentMetrics(metrics::Registry& registry, int slots);

  // A lease's series, until LeaseEnded.
  LeaseMetrics LeaseStarted(const std::string& job_id, const std::string& lease_id);
  // Removes the lease's series; counts the outcome and, for an error, its class (errors.h).
  void LeaseEnded(const std::string& job_id, const std::string& lease_id, LeaseOutcome outcome,
                  const absl::Status& status);
  // A checkpoint after `previous`: adds what the lease did since to the job's counters.
  static void Checkpointed(const LeaseMetrics& lease, const ferry::v1::Counters& previous,
                           const ferry::v1::Counters& latest);
  // One batch read and written (or compared) in `seconds` since the lease's previous one (the
  // first: since the lease started, its setup included).
  static void BatchDone(const LeaseMetrics& lease, double seconds);

  // The stream to the controller registered (true) or ended (false).
  void SetConnected(bool connected) { connected_->Set(connected ? 1 : 0); }
  // A connection attempt failed or a stream ended: the agent reconnects.
  void Reconnecting() { reconnects_->Increment(); }
  // A shard's copy starts again after `status` (copier.h CopyCallbacks::on_retry).
  void ShardRetried(const absl::Status& status);

  // The observers of the connections to each side (CopyOptions::source_io, target_io).
  redis::IoObserver* source_io() { return &source_io_; }
  redis::IoObserver* target_io() { return &target_io_; }

 private:
  metrics::Gauge* const running_;
  metrics::Gauge* const connected_;
  metrics::Counter* const reconnects_;
  metrics::Family<metrics::Counter>* const keys_scanned_;
  metrics::Family<metrics::Counter>* const keys_copied_;
  metrics::Family<metrics::Counter>* const bytes_copied_;
  metrics::Family<metrics::Gauge>* const lease_scanned_;
  metrics::Family<metrics::Gauge>* const lease_copied_;
  metrics::Histogram* const batch_seconds_;
  metrics::Family<metrics::Counter>* const ends_;
  metrics::Family<metrics::Counter>* const errors_;
  metrics::Family<metrics::Counter>* const shard_retries_;
  SideIoMetrics source_io_;
  SideIoMetrics target_io_;
};

}  // namespace ferry::agent
