#pragma once

// The write side of a shard copy: RESTORE (or DEL for keys that expired on the way) of each
// batch through a redis::Router, so one code path serves standalone and cluster targets, then
// a checkpoint.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/copier.h"
#include "agent/expiry.h"
#include "agent/shard_reader.h"
#include "common/redis/router.h"

namespace ferry::agent {

// Writes batches and checkpoints after each. Runs on the copying thread only.
class ShardWriter {
 public:
  // `target` null: a dry run (counts, writes nothing). `checkpoint` is updated after each
  // batch and passed to callbacks.on_checkpoint.
  ShardWriter(const CopyOptions& options, redis::Router* target, ExpiryMapper expiry,
              Checkpoint& checkpoint, const CopyCallbacks& callbacks);

  // Writes one batch (one pipelined round per target node). Fatal and transient errors
  // (UNAVAILABLE when the target stayed unreachable or kept redirecting) return before the
  // checkpoint; per-key errors are recorded and the batch counts as written.
  absl::Status Write(const Batch& batch);

 private:
  // What was sent for one key, to interpret its reply.
  enum class Sent { kRestore, kSet, kDelete };

  // Queues the command for key `i`, if any; updates `delta`.
  void Queue(const Batch& batch, size_t i, ferry::v1::Counters& delta);
  // A string read by MGET: SET, with PXAT/PX for a TTL and NX unless replacing.
  void QueueString(const Batch& batch, size_t i, absl::string_view value,
                   ferry::v1::Counters& delta);
  absl::Status ReadReplies(const Batch& batch, ferry::v1::Counters& delta);
  // The keys SET NX or RESTORE found on the target (conflicts_): one more round reads them
  // (GET, DUMP) and only those whose value differs from the source's are conflicts. SCAN
  // returns some keys twice, so the second write of a key often meets the first; a key that
  // already holds the source's value counts as copied (DESIGN.md, "Honesty rules").
  absl::Status CheckConflicts(const Batch& batch, ferry::v1::Counters& delta);
  // Key `i` holds another value on the target: skipped or failed, by --on-conflict.
  void Conflict(const Batch& batch, size_t i, ferry::v1::Counters& delta);
  void Fail(absl::string_view key, std::string reason, ferry::v1::Counters& delta);

  const CopyOptions& options_;
  redis::Router* target_;
  ExpiryMapper expiry_;
  Checkpoint& checkpoint_;
  const CopyCallbacks& callbacks_;
  // Per queued command: the key's index in the batch and what was sent.
  std::vector<std::pair<size_t, Sent>> sent_;
  // Indices into sent_ of the writes that found their key on the target (not replacing).
  std::vector<size_t> conflicts_;
  // The TTL arguments of the queued RESTOREs: the router keeps views until Execute. Reserved
  // before each batch so they never move.
  std::vector<std::string> ttl_args_;
  // Recent time from sending a batch to its last reply: how long a RESTORE may wait in the
  // target's queue, for targets that only take relative TTLs.
  absl::Duration write_latency_ = absl::Milliseconds(20);
};

}  // namespace ferry::agent
