#pragma once

// The read side of a shard copy: batches of keys with their PTTL and DUMP replies, the
// byte-bounded queue that carries them to the writer, and the reader that fills it from a SCAN
// walk or from the keys of given cluster slots.

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/copier.h"
#include "agent/expiry.h"
#include "agent/shard_walk.h"
#include "agent/target_probe.h"
#include "common/redis/capabilities.h"
#include "common/redis/connection.h"
#include "common/redis/slot.h"

namespace ferry::agent {

class RateLimiter;

// An error reply of the source or the target as a status that says which side and which
// command failed.
absl::Status ReplyStatus(absl::string_view side, absl::string_view command, redis::ReplyView reply);

// Keys read with their expiry and values.
struct Batch {
  // Own the bytes `keys` look at: one reply, or several SCAN replies merged near a shard's end.
  std::vector<std::shared_ptr<const redis::Reply>> owners;
  std::vector<absl::string_view> keys;
  // Per key: the earliest moment it can expire, in this host's clock (Unix ms; expiry.h), or
  // kNoExpiry, or kVanished (gone, or its TTL unreadable).
  std::vector<int64_t> expiry;
  // Per key: its DUMP reply, or (where `type[i]` is set) the reply of the one command that
  // read its whole value type by type (value_copy.h AppendWholeRead). An error reply: the key
  // could not be read (per key).
  std::vector<redis::Reply> dump;
  // Per key, when values are read type by type: the key's TYPE; empty otherwise (DUMP).
  std::vector<std::string> type;
  // Keys the writer copies one at a time in chunks (ValueCopier), not in this batch's
  // pipeline: big keys, module types and (sources without XINFO STREAM FULL) streams read type
  // by type, keys whose DUMP payload the target cannot read and keys whose type changed (or, a
  // stream, that vanished) between the probe and the read.
  std::vector<std::string> individual;
  // The source node read, for the writer's own connection to it (individual keys); valid while
  // the batch is written. `replica`: it is a replica (READONLY).
  const redis::Endpoint* source = nullptr;
  bool replica = false;
  // What the source can do (gates what a rebuilt stream's commands may carry), valid as
  // `source`; and its clock against this host's where measured (AbsoluteExpiryClock), from which
  // a rebuilt stream's pending entries' idle times are counted.
  const redis::Capabilities* source_caps = nullptr;
  std::optional<SourceClock> clock;
  // Standalone sources: string values come from one MGET per batch (cheaper than DUMP on the
  // source and SET cheaper than RESTORE on the target). `string_value[i]` is set when key i
  // held a string; its bytes are owned by `mget`. Then `dump[i]` is empty.
  std::shared_ptr<const redis::Reply> mget;
  std::vector<std::optional<absl::string_view>> string_value;
  // SCAN walk: where the shard resumes once this batch is written. Unset for slot reads.
  std::optional<uint64_t> cursor_after;
  bool walk_end = false;  // The last batch of the SCAN walk.
  // Slots of keys the node no longer serves (ASK: being migrated; MOVED: migrated), to be read
  // again from their owners.
  std::vector<int> moved_slots;
  uint64_t bytes = 0;
};

// Where the batches of a shard go, on the copying thread: ShardWriter (copy jobs) or
// ShardVerifier (verify jobs). Write returns before checkpointing on any error.
class BatchSink {
 public:
  virtual ~BatchSink() = default;
  virtual absl::Status Write(const Batch& batch) = 0;
};

// What a sink does once a batch is written (or checked): moves `checkpoint` past it, adds `delta`
// to its counters and hands it to callbacks.on_checkpoint.
void CheckpointAfter(const Batch& batch, const ferry::v1::Counters& delta, Checkpoint& checkpoint,
                     const CopyCallbacks& callbacks);

// Removes the keys `erase` marks from every per-key vector of `batch` that has them.
void EraseKeys(Batch& batch, const std::vector<bool>& erase);

// A queue of batches bounded in bytes, between the reading thread and the writing one. Always
// admits one batch, so a single huge key still moves. Thread-safe.
class BatchQueue {
 public:
  explicit BatchQueue(uint64_t max_bytes) : max_bytes_(max_bytes) {}

  // Producer. False when the consumer stopped.
  bool Push(Batch batch) ABSL_LOCKS_EXCLUDED(mu_);
  // Consumer: the next batch, or nullopt once the producer closed the queue (status() says
  // why) or the consumer stopped.
  std::optional<Batch> Pop() ABSL_LOCKS_EXCLUDED(mu_);
  // Producer: no more batches, for `status`.
  void Close(absl::Status status) ABSL_LOCKS_EXCLUDED(mu_);
  // Consumer: no more batches wanted; Push returns false from now on.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);
  bool stopped() ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status status() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const uint64_t max_bytes_;
  absl::Mutex mu_;
  std::deque<Batch> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

// Reads keys from one source connection into `queue`, from the reading thread. Both methods
// return OK when the keys are all pushed or reading was stopped (cancel, queue stopped, rate
// limiter), else the error: the source's transport errors, fatal reply errors, and
// UNAVAILABLE "source topology changed" when a primary that answered MOVED is no longer a
// primary (a failover). MOVED from a node that still serves (a primary, or the replica read)
// means the slot migrated away: its keys are skipped and the slot listed in moved_slots.
// How values are read, for one attempt of a shard.
struct ReadPath {
  redis::Capabilities source = redis::Capabilities::ForVersion({4, 0});
  // The target's facts; null in a dry run (every payload is taken as readable).
  const TargetFacts* target = nullptr;
  // Read type by type from the start (--copy-path typed, or the target refuses RESTORE). The
  // reader also switches to it for the rest of the shard at the first DUMP payload the target
  // cannot read.
  bool typed = false;
  uint64_t big_key_bytes = wire::kDefaultBigKeyBytes;
};

class ShardReader {
 public:
  // `limiter` may be null; `spec` gives MATCH and TYPE. `replica`: `source` is a replica
  // read on purpose (READONLY). `clock`: the source answers PEXPIRETIME, and this is its
  // clock (AbsoluteExpiryClock); nullopt: expiries come from PTTL.
  ShardReader(const ShardSpec& spec, const CopyOptions& options, redis::Connection& source,
              bool replica, std::optional<SourceClock> clock, ReadPath path, RateLimiter* limiter,
              const std::atomic<bool>* cancel, BatchQueue& queue);

  // The SCAN walk from `cursor` until walk.Finished(); batches carry their cursors.
  absl::Status Walk(const ShardWalk& walk, uint64_t cursor);

  // Every key of `slots` on this node (cluster): CLUSTER COUNTKEYSINSLOT + GETKEYSINSLOT per
  // slot; one SCAN of the whole node filtered by slot for slots too big for one reply, and
  // for all of them when MATCH or TYPE filter the keys.
  absl::Status ReadSlots(const redis::SlotSet& slots);

  // Live jobs: `keys` as they are now, as one batch read the way a walk's batch is (probe,
  // then TTLs and values; no SCAN), returned instead of queued. Keys this node no longer serves
  // are in moved_slots. The batch looks at the bytes of `keys`: they must outlive it.
  absl::StatusOr<Batch> ReadKeys(const std::vector<std::string>& keys);

 private:
  // `one`: COUNT 1 whatever the walk says (a call read again, ScanLoop).
  void AppendScan(uint64_t cursor, bool one = false);
  // Whether shard ends are exact (ShardWalk::ScanCount): the source's SCAN COUNT 1 visits one
  // position, and this walk has not used up its calls of COUNT 1 (a shard far fuller than DBSIZE
  // says goes on as before).
  bool ExactEnds() const {
    constexpr int kMaxExactSteps = 64;
    return path_.source.scan_count_one_is_one_position() && exact_steps_ < kMaxExactSteps;
  }
  // SCAN from `cursor` until `finished`, keeping the keys `keep` accepts.
  template <typename Finished, typename Keep>
  absl::Status ScanLoop(uint64_t cursor, bool walk, const Finished& finished, const Keep& keep);
  // Probe, then the values of the batch's keys (and the next SCAN, in the first flush).
  absl::Status ReadDumps(Batch& batch, bool then_scan, uint64_t next_cursor);
  // Verify jobs: the keys alone (ShardVerifier reads both sides itself), of the job's type on
  // sources without SCAN ... TYPE; sends the next SCAN.
  absl::Status ReadKeysOnly(Batch& batch, bool then_scan, uint64_t next_cursor);
  // Before any value is read, one round: MEMORY USAGE of each key (or, where MEMORY is
  // refused, TYPE and the type's length command) so that big keys go to batch.individual
  // unread, and TYPE where values are read type by type or the source cannot filter SCAN by
  // TYPE (keys of other types are dropped). Sends the next SCAN in the same flush and reads
  // its reply into prefetched_.
  // `strings_by_mget`: strings are read with MGET (standalone); where the shard's last batch
  // was mostly strings, the probe sizes keys with STRLEN (half the source's cost of MEMORY
  // USAGE) and only the others with MEMORY USAGE.
  absl::Status Probe(Batch& batch, bool then_scan, uint64_t next_cursor, bool strings_by_mget);
  // Where MEMORY USAGE is refused: sizes from STRLEN / HLEN / LLEN / SCARD / ZCARD / XLEN
  // (aggregates at kBytesPerElement each); `type` per key, read first when empty.
  absl::Status ProbeLengths(const Batch& batch, std::vector<std::string>& type,
                            std::vector<int64_t>& size);
  // PTTL + DUMP (or type by type: the whole-value read) per key, cluster and typed paths.
  absl::Status ReadPerKey(Batch& batch, bool then_scan, uint64_t next_cursor);
  // Moves keys whose DUMP payload the target cannot read to batch.individual, and reads the
  // rest of the shard type by type.
  void DeferUnreadablePayloads(Batch& batch);
  // Queues the read of key i's value: DUMP, or type by type its whole-value read.
  void AppendValueRead(const Batch& batch, size_t i);
  // Stores the reply of AppendValueRead as key i's value. True when the key must be copied on
  // its own instead (its type changed since the probe); fatal read errors are returned.
  absl::StatusOr<bool> TakeValue(Batch& batch, size_t i, redis::Reply value);
  // Moves the keys `changed` marks to batch.individual.
  static void DeferChanged(Batch& batch, const std::vector<bool>& changed);
  // ReadDumps for standalone sources: PTTL + one MGET, then DUMP for the keys that are not
  // strings.
  absl::Status ReadWithMget(Batch& batch, bool then_scan, uint64_t next_cursor);
  // One round of PTTL (or, with `probe_ttls`, INFO probes before and after instead) and MGET,
  // then DUMP for the keys that are not strings. With probes: false (the batch must be read
  // again with PTTL) when they do not prove that no key read had a TTL.
  absl::StatusOr<bool> ReadStandalone(Batch& batch, bool then_scan, uint64_t next_cursor,
                                      bool probe_ttls);
  // Queues the TTL command (PEXPIRETIME or PTTL) of `key`.
  void AppendTtl(absl::string_view key);
  // PTTL answers are only known to come between sending and receiving: when that took longer
  // than kMaxTtlUncertainty, the TTLs of the batch's keys that have one are read again (the
  // pending SCAN reply, if any, is read into prefetched_ first).
  absl::Status RereadSlowTtls(Batch& batch, absl::Time sent, bool scan_pending);
  void AppendTtlProbe();
  absl::StatusOr<TtlProbe> ReadTtlProbe();
  // After a MOVED reply: OK when the node still serves (the slot migrated away), UNAVAILABLE
  // when it is no longer a primary. Reads the pending SCAN reply first, into prefetched_.
  absl::Status CheckStillServing(bool scan_pending);
  // Waits for the rate limiter; false when reading should stop.
  bool Admit(size_t keys);
  // Paces the bytes a batch read (CopyOptions::byte_limiter) before it is queued: the next read
  // waits until the job's byte rate allows it. False when cancelled meanwhile.
  bool Paid(const Batch& batch);
  bool Stopping();

  const ShardSpec& spec_;
  const CopyOptions& options_;
  redis::Connection& source_;
  const bool replica_;
  RateLimiter* limiter_;
  const std::atomic<bool>* cancel_;
  BatchQueue& queue_;
  const std::optional<SourceClock> clock_;
  // The SCAN walk being read (Walk), which sizes each SCAN's COUNT, and its node's key count;
  // null for slot reads.
  const ShardWalk* walk_ = nullptr;
  uint64_t db_keys_ = 0;
  std::optional<redis::Reply> prefetched_;  // A SCAN reply read ahead of its turn.
  // The cursor and COUNT of the SCAN in flight (one at a time), and the COUNT 1 calls of this
  // walk.
  uint64_t scan_start_ = 0;
  int scan_count_ = 0;
  // A call ran past the end: COUNTs from there on are at most this (0: no bound), half the
  // COUNT of the last call that ran past it.
  int tail_cap_ = 0;
  int exact_steps_ = 0;
  // Standalone: read without TTL commands (INFO probes prove none is needed) until a TTL shows
  // up.
  bool ttl_free_ = true;
  ReadPath path_;
  bool typed_;                   // Values are read type by type.
  bool memory_usage_ok_ = true;  // MEMORY USAGE answers (not refused).
  bool mostly_strings_ = false;  // 90% of the last batch read with MGET were strings.
  // SCAN ... TYPE is not there (Redis < 6.0): the probe reads TYPE and filters.
  const bool filter_types_;
};

}  // namespace ferry::agent
