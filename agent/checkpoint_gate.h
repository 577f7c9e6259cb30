#pragma once

// Reports a writing shard's checkpoints only once the target's replication offsets cover what
// they count as written (agent/target_guard.h, "Failovers"). A checkpoint is persisted by the
// controller and a later attempt, maybe on another agent, resumes after it: if the target then
// fails over to a replica that missed some of those writes, only offsets read after them tell.
// So before a checkpoint goes on, TargetGuard reads INFO (one round trip) of every target primary
// and of every node that may have acknowledged writes since the last confirmation; checkpoints
// in between are held back, at most `interval` long (about the period at which checkpoints are
// reported anyway), so the cost is a round trip per primary per report, not per batch.
//
// When a node that took writes cannot be read any more (killed), or a replica took over from it
// before its offset was read, what the shard wrote since the last reported checkpoint cannot be
// judged: the attempt stops and the shard goes back to that checkpoint, where the guard judges
// the new primary on offsets that cover everything before it, and the rest is copied again.

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/copier.h"
#include "agent/target_guard.h"
#include "common/redis/connection.h"
#include "common/redis/router.h"

namespace ferry::agent {

// How long checkpoints may be held back: hub_stream reports progress about once a second.
inline constexpr absl::Duration kConfirmInterval = absl::Seconds(1);

// One attempt of a shard that writes to the target; on its copying thread only.
class CheckpointGate {
 public:
  // `router`: the target's; null (a dry run, a shard that writes nothing there): everything
  // passes straight through. `guard` works on `checkpoint.target_nodes`; `checkpoint` is the
  // attempt's, updated by its sinks before each on_checkpoint; `downstream` is told what is
  // reported. All must outlive the gate. Marks the router's primaries written, and refuses the
  // router's writes once the gate found a reason to stop (redis::Router::set_before_execute).
  CheckpointGate(const ShardSpec& spec, const CopyOptions& options, redis::Router* router,
                 TargetGuard& guard, Checkpoint& checkpoint, const CopyCallbacks& downstream,
                 absl::Duration interval = kConfirmInterval);
  ~CheckpointGate();
  CheckpointGate(const CheckpointGate&) = delete;
  CheckpointGate& operator=(const CheckpointGate&) = delete;

  // For the attempt's sinks: on_checkpoint goes through the gate, the rest to `downstream`.
  const CopyCallbacks& callbacks() const { return callbacks_; }

  // Must be called with the attempt's outcome `status` before the attempt returns it. Reports
  // the checkpoint held back once confirmed; when that cannot be done, puts `checkpoint` back
  // to the last one reported, so the next attempt writes that part again. Returns `status`, a
  // DATA_LOSS found meanwhile, or UNAVAILABLE when the attempt must be retried (the shard went
  // back, or the guard interrupted it at a failover).
  absl::Status Finish(absl::Status status);

 private:
  void OnCheckpoint();
  // Every primary of the router may acknowledge the next writes.
  void MarkPrimaries();
  // Reads and judges every node that may hold unconfirmed writes (TargetGuard::Confirm).
  absl::Status Confirm();
  void Report(bool more_writes);
  void GoBack(const absl::Status& why);
  absl::StatusOr<redis::Connection*> ConnectionTo(const redis::Endpoint& endpoint);

  const ShardSpec& spec_;
  const CopyOptions& options_;
  redis::Router* const router_;
  TargetGuard& guard_;
  Checkpoint& checkpoint_;
  const CopyCallbacks& downstream_;
  const absl::Duration interval_;
  CopyCallbacks callbacks_;
  Checkpoint last_reported_;  // What a retry resumes from when the shard must go back.
  bool held_ = false;         // checkpoint_ has writes that were not reported.
  absl::Time confirmed_at_;   // The last look, or the gate's start.
  // Why the attempt must stop (the router refuses writes from then on); OK: it goes on.
  absl::Status stop_;
  // The gate's own connection to each node it reads, by address (the router's are its own).
  std::map<std::string, redis::Connection> connections_;
};

}  // namespace ferry::agent
