#pragma once

// One shard running under a lease, on a thread of its own, and the reports that tell the
// controller about it: Progress while it runs, then ShardFinished (done or failed) or Returned
// (revoked or drained). HubStream owns the runners and sends what they report.

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "agent/copier.h"
#include "agent/metrics.h"
#include "agent/rate_limiter.h"
#include "ferry/v1/ferry.pb.h"

namespace ferry::agent {

// Why a running shard was asked to stop.
enum class StopReason { kNone, kRevoked, kDrain, kStreamLost };

// Failed keys per report are cut into messages of about this size (gRPC's default limit on
// received messages is 4 MiB).
inline constexpr size_t kMaxFailedKeyBytes = 1 << 20;

// One message for the controller. `expects_ack`: the controller answers it with an Ack for
// the lease, which the stream waits for (a drain ends once every hand-back was acknowledged).
struct LeaseReport {
  ferry::v1::AgentMessage message;
  bool expects_ack = false;
};

// The signature of CopyShard (agent/copier.h); a test substitutes its own.
using CopyFunction =
    std::function<absl::Status(const ShardSpec&, const CopyOptions&, const Checkpoint&,
                               RateLimiter*, const std::atomic<bool>*, const CopyCallbacks&)>;

// Thread-safe: the owner calls any method from any thread; the shard's thread only records
// checkpoints and failed keys. Reports are returned, never sent from here, so the owner may
// hold its own lock while it asks for them.
class LeaseRunner {
 public:
  // What the controller's Lease grants, parsed (agent/lease_spec.h).
  struct Grant {
    std::string lease_id;
    uint64_t epoch = 0;
    ShardSpec spec;
    CopyOptions copy;
    Checkpoint resume;
    double keys_per_second = 0;   // <= 0: no limit.
    double bytes_per_second = 0;  // Of source reads; <= 0: no limit.
    std::string job_id;
    AgentMetrics* metrics = nullptr;  // Null: no metrics. Outlives the runner.
  };

  // Called once on the shard's thread when the copy returned, without this runner's lock
  // held: the owner takes EndReports(status) and calls MarkEnded() under its own lock, so a
  // drain never sees the runner gone before its last report was queued.
  using EndCallback = std::function<void(LeaseRunner* runner, const absl::Status& status)>;

  explicit LeaseRunner(Grant grant, CopyFunction copy = CopyShard);
  // Joins the thread if Start() ran and Join() did not.
  ~LeaseRunner();
  LeaseRunner(const LeaseRunner&) = delete;
  LeaseRunner& operator=(const LeaseRunner&) = delete;

  // Runs the copy from the grant's resume checkpoint on a new thread.
  void Start(EndCallback on_end) ABSL_LOCKS_EXCLUDED(mu_);
  // Waits for the thread; only after the end callback ran (or never started). Call without
  // holding a lock the end callback takes.
  void Join();

  // The copy's callbacks (public for tests): the latest checkpoint and a key that failed.
  void RecordCheckpoint(const Checkpoint& checkpoint) ABSL_LOCKS_EXCLUDED(mu_);
  void RecordBatch() ABSL_LOCKS_EXCLUDED(mu_);
  void RecordFailedKey(const std::string& key, const std::string& reason) ABSL_LOCKS_EXCLUDED(mu_);

  // Asks the copy to stop at the next batch. The first reason sticks, except kStreamLost,
  // which replaces any (nothing can be reported any more). No effect once ended.
  void Stop(StopReason reason) ABSL_LOCKS_EXCLUDED(mu_);
  void SetRate(double keys_per_second, double bytes_per_second) {
    limiter_.SetRate(keys_per_second);
    byte_limiter_.SetRate(bytes_per_second);
  }
  // Live jobs' watch leases: the controller's LiveControl.
  void SetLive(bool apply, uint64_t subscription, uint64_t cutover_seq) {
    live_.apply_subscription = subscription;
    live_.apply = apply;
    if (cutover_seq > live_.cutover_seq) live_.cutover_seq = cutover_seq;
  }

  // What changed since the last report: failed keys beyond the size limit first, in Progress
  // messages carrying the checkpoint already reported (so no checkpoint passes unreported
  // keys), then one Progress with the latest checkpoint. Empty when nothing changed.
  std::vector<LeaseReport> TakeProgress() ABSL_LOCKS_EXCLUDED(mu_);
  // The reports for a copy that returned `status` (logged too): ShardFinished when it finished
  // or failed on its own, Returned at the last checkpoint when it was stopped, nothing once
  // the stream is lost.
  std::vector<LeaseReport> EndReports(const absl::Status& status) ABSL_LOCKS_EXCLUDED(mu_);
  // The copy returned and its end reports were queued: the thread can be joined.
  void MarkEnded() ABSL_LOCKS_EXCLUDED(mu_);

  const std::string& lease_id() const { return grant_.lease_id; }
  bool watch() const { return grant_.spec.watch; }
  bool ended() ABSL_LOCKS_EXCLUDED(mu_);
  // Running and not asked to stop: it holds one of the agent's slots. A revoked shard stops
  // within a batch; the controller already counts its slot as free.
  bool active() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Moves failed_ into the returned list of keys; the overflow goes into `out` first.
  google::protobuf::RepeatedPtrField<ferry::v1::FailedKey> TakeFailedKeys(
      bool expect_ack, std::vector<LeaseReport>* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Run(const EndCallback& on_end);
  // Counts how the copy ended (the same reading of stop_ as EndReports).
  void CountEnd(const absl::Status& status) ABSL_LOCKS_EXCLUDED(mu_);

  LiveSignals live_;          // Before grant_: its copy options point at it,
  RateLimiter byte_limiter_;  // and at this.
  const Grant grant_;
  const CopyFunction copy_;
  RateLimiter limiter_;
  std::atomic<bool> cancel_{false};
  std::thread thread_;

  absl::Mutex mu_;
  Checkpoint latest_ ABSL_GUARDED_BY(mu_);     // The last checkpoint (the resume one at first).
  Checkpoint reported_ ABSL_GUARDED_BY(mu_);   // The checkpoint of the last report.
  bool changed_ ABSL_GUARDED_BY(mu_) = false;  // `latest_` has not been reported yet.
  std::vector<ferry::v1::FailedKey> failed_ ABSL_GUARDED_BY(mu_);  // Since the last report.
  StopReason stop_ ABSL_GUARDED_BY(mu_) = StopReason::kNone;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  LeaseMetrics metrics_ ABSL_GUARDED_BY(mu_);   // Set by Start() when grant_.metrics is.
  absl::Time batch_time_ ABSL_GUARDED_BY(mu_);  // Of the last batch, or the lease's start.
};

}  // namespace ferry::agent
