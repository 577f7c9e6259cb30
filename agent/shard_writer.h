#pragma once

// The write side of a shard copy: each batch through a redis::Router, so one code path serves
// standalone and cluster targets, then a checkpoint. RESTORE for DUMP payloads, SET for
// strings, type by type (value_copy.h) a temporary key renamed over the real one for values read
// type by type (small streams included), DEL for keys that expired on the way; then, one at a
// time in chunks, the batch's individual keys (big keys, streams of sources without XINFO
// STREAM FULL, and keys whose RESTORE the target refused as unreadable).

#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/copier.h"
#include "agent/expiry.h"
#include "agent/shard_reader.h"
#include "agent/target_probe.h"
#include "agent/value_copy.h"
#include "common/redis/router.h"

namespace ferry::agent {

// Writes batches and checkpoints after each. Runs on the copying thread only.
class ShardWriter : public BatchSink {
 public:
  // `target` null: a dry run (counts, writes nothing). `checkpoint` is updated after each
  // batch and passed to callbacks.on_checkpoint.
  // `target_facts` is null exactly when `target` is.
  ShardWriter(const CopyOptions& options, redis::Router* target, ExpiryMapper expiry,
              const TargetFacts* target_facts, Checkpoint& checkpoint,
              const CopyCallbacks& callbacks);

  // Writes one batch (one pipelined round per target node). Fatal and transient errors
  // (UNAVAILABLE when the target stayed unreachable or kept redirecting) return before the
  // checkpoint; per-key errors are recorded and the batch counts as written.
  absl::Status Write(const Batch& batch) override;

  // Live jobs: a key gone from the source (nil DUMP, PTTL -2) is deleted on the target too,
  // still counted vanished; a copy leaves the target's key alone.
  void set_delete_vanished(bool on) { delete_vanished_ = on; }
  // Off: every write counts as copied and no key is remembered (a live watcher writes the same
  // keys again and again, for as long as the job lives).
  void set_count_distinct(bool on) { count_distinct_ = on; }

 private:
  // What was sent for one key, to interpret its reply: kTypedPart are the commands that build
  // a value in its temporary key, kRename the RENAME (or RENAMENX) that ends it.
  enum class Sent { kRestore, kSet, kDelete, kTypedPart, kRename };

  // Queues the command for key `i`, if any; updates `delta`.
  void Queue(const Batch& batch, size_t i, ferry::v1::Counters& delta);
  // A string read by MGET: SET, with PXAT/PX for a TTL and NX unless replacing.
  void QueueString(const Batch& batch, size_t i, absl::string_view value,
                   ferry::v1::Counters& delta);
  // A value read type by type: rebuilt in a temporary key, renamed over the key.
  void QueueTyped(const Batch& batch, size_t i, ferry::v1::Counters& delta);
  // The TTL argument for key i (RestoreTtl), or nullopt when it has expired by now: then
  // counted, and the key deleted on the target (replace policy). kNoExpiry gives 0.
  std::optional<int64_t> TtlOrExpire(const Batch& batch, size_t i, ferry::v1::Counters& delta);
  absl::Status ReadReplies(const Batch& batch, ferry::v1::Counters& delta);
  // One key on its own, in chunks, through the writer's own connection to the source node.
  absl::Status CopyIndividually(const Batch& batch, absl::string_view key,
                                ferry::v1::Counters& delta);
  // Opens (or keeps) side_source_ on the node the batch was read from.
  absl::Status OpenSideSource(const Batch& batch);
  // The keys SET NX or RESTORE found on the target (conflicts_): one more round reads them
  // (GET, DUMP) and only those whose value differs from the source's are conflicts. SCAN
  // returns some keys twice, so the second write of a key often meets the first; a key that
  // already holds the source's value counts as copied (DESIGN.md, "Honesty rules").
  absl::Status CheckConflicts(const Batch& batch, ferry::v1::Counters& delta);
  // Those compared by value: GET, DUMPs of the key and of the temporary key (then removed).
  absl::Status CheckDumpConflicts(const Batch& batch, const std::vector<size_t>& conflicts,
                                  ferry::v1::Counters& delta);
  // A stream rebuilt in tmp_of_[i]: DUMPs of two rebuilt streams differ in their delivery
  // times, so what StreamFingerprint compares (stream_copy.h) is compared, as ValueCopier does;
  // then the temporary key is removed.
  absl::Status CheckStreamConflict(const Batch& batch, size_t i, ferry::v1::Counters& delta);
  // Key i is gone from the target since the write: expired with its TTL, else a conflict.
  void Gone(const Batch& batch, size_t i, ferry::v1::Counters& delta);
  // Key `i` holds another value on the target: skipped or failed, by --on-conflict.
  void Conflict(const Batch& batch, size_t i, ferry::v1::Counters& delta);
  void Fail(absl::string_view key, std::string reason, ferry::v1::Counters& delta);
  // Key i is gone from the source: counted vanished, and deleted on the target when
  // delete_vanished_.
  void Vanished(const Batch& batch, size_t i, ferry::v1::Counters& delta);
  // A write of `key` the target took (or found already done): `copied` the first time this
  // attempt writes the key, `resent` after that.
  void Copied(absl::string_view key, ferry::v1::Counters& delta);

  const CopyOptions& options_;
  redis::Router* target_;
  ExpiryMapper expiry_;
  Checkpoint& checkpoint_;
  const CopyCallbacks& callbacks_;
  // Per queued command: the key's index in the batch and what was sent.
  std::vector<std::pair<size_t, Sent>> sent_;
  // Indices into sent_ of the writes that found their key on the target (not replacing).
  std::vector<size_t> conflicts_;
  const TargetFacts* target_facts_;
  TempKeys temp_keys_;
  // Arguments the router keeps views of until Execute: temporary key names, TTLs. Cleared
  // before each batch.
  ArgArena arena_;
  // Per key of the batch: its temporary key (typed writes), and whether it already failed.
  std::vector<absl::string_view> tmp_of_;
  std::vector<bool> failed_;
  // Keys whose RESTORE the target refused as unreadable: copied individually after the batch.
  std::vector<std::string> unreadable_;
  // The writer's own connection to the source node of individual keys, and what it knows of it.
  std::optional<redis::Connection> side_source_;
  redis::Capabilities side_caps_ = redis::Capabilities::ForVersion({4, 0});
  std::optional<SourceClock> side_clock_;
  // Recent time from sending a batch to its last reply: how long a RESTORE may wait in the
  // target's queue, for targets that only take relative TTLs.
  absl::Duration write_latency_ = absl::Milliseconds(20);
  bool delete_vanished_ = false;
  // Hashes of the keys this attempt wrote (about 16 bytes each: a shard holds some ten thousand
  // keys), so that a key SCAN returns again is counted once; not kept without count_distinct_.
  absl::flat_hash_set<uint64_t> written_;
  bool count_distinct_ = true;
};

}  // namespace ferry::agent
