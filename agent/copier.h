#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/redis/connection.h"
#include "common/redis/endpoint.h"
#include "common/redis/scan_math.h"
#include "common/redis/slot.h"
#include "ferry/v1/ferry.pb.h"
#include "proto/wire/job_defaults.h"

namespace ferry::agent {

class RateLimiter;

enum class OnConflict { kReplace, kSkip, kFail };

// Which node of a source cluster a shard reads: the primary serving its slots or a replica of
// that primary (READONLY).
enum class ReadFrom { kPrimary, kReplica };

// A target server process as a shard first saw it (ferry.v1.TargetNode): what TargetGuard
// compares every later look at the node with.
struct TargetNode {
  std::string address;        // host:port
  std::string run_id;         // Empty: unknown (the target user may not run INFO).
  int64_t evicted_keys = -1;  // -1: unknown.
  bool replica = false;       // Seen as a replica by TargetGuard::Inspect; not stored.
  // INFO replication master_replid and master_repl_offset, read after the writes of the
  // checkpoint that holds them were acknowledged: what a replica promoted in the node's place
  // must hold (TargetGuard). Empty and -1: unknown.
  std::string repl_id{};
  int64_t repl_offset = -1;
  // Seen by TargetGuard::Inspect only, not stored: master_replid2, and second_repl_offset - 1,
  // the last byte of that former primary's stream the node holds (a promoted replica). Empty and
  // -1: none or unknown.
  std::string repl_id2{};
  int64_t repl_id2_end = -1;
  // Not stored: the shard's writes acknowledged since repl_offset was read may have reached the
  // node (TargetGuard::MarkWritten), so repl_offset may fall short of them.
  bool unconfirmed = false;
};

// Where a shard resumes from: the cursor after the last batch written, and the counters so far.
struct Checkpoint {
  uint64_t cursor = 0;
  bool done = false;
  std::string run_id;  // The source server process the cursor belongs to.
  // Counters so far (ferry.v1.Counters documents each); summed with wire::AddCounters.
  ferry::v1::Counters counters;
  // Cluster source: the SCAN walk is over; `rescan` remains to be read from the slots' owners.
  bool scanned = false;
  // Cluster source: shard slots another node served at some point of the walk.
  redis::SlotSet rescan;
  // Cluster source: `host:port` of the node the cursor belongs to.
  std::string node;
  // The target processes written to (TargetGuard): a restart, an eviction, or a failover to a
  // replica short of their replication offsets fails the shard.
  std::vector<TargetNode> target_nodes;
  // Live jobs: 0 the snapshot; n > 0 the n-th rescan pass, which compares and fixes.
  uint32_t pass = 0;
  // Watch shards: the watcher's state (ferry.v1.LiveStatus documents each field).
  ferry::v1::LiveStatus live;
};

// One shard of one source database (DESIGN.md, "Shards: the SCAN cursor math").
struct ShardSpec {
  // Standalone: the server. Cluster: any node of the source cluster (the URI given).
  redis::Endpoint source;
  // A standalone server or any node of a cluster (RESTOREs are routed by slot).
  redis::Endpoint target;
  int source_db = 0;
  int target_db = 0;
  int shard_bits = 0;        // The database (cluster: the node) is cut into 2^shard_bits shards.
  uint64_t shard_index = 0;  // In [0, 2^shard_bits).
  std::string match;         // SCAN MATCH pattern; empty means all.
  std::string type;          // SCAN TYPE filter; empty means all.

  // Cluster sources only: the shard copies the keys of `slots`, from whichever primary serves
  // them when it runs (or a replica of it). Single-dict scheme: shard `shard_index` of that
  // node's cursor space, keys of other slots dropped. Per-slot scheme: `slots` is one range,
  // walked from its first slot to its last.
  redis::SlotSet slots;
  redis::ScanScheme scheme = redis::ScanScheme::kSingleDict;
  // `host:port` of the primary that served `slots` when the job was planned: asked first.
  std::string source_node;
  ReadFrom read_from = ReadFrom::kPrimary;

  // Verify jobs: `source` is the job's target and `target` its source (the dbs likewise): the
  // shard looks for keys the job's source lacks. Live jobs: the same, in rescan passes, where
  // such keys are deleted from the job's target.
  bool reverse = false;
  // Live jobs: a watch of the source node (`source`, or for a cluster the node serving `slots`)
  // and database, not a slice of the keyspace (ferry.v1.ShardRef.watch; agent/live_watcher.h).
  bool watch = false;

  bool cluster() const { return !slots.empty(); }
};

// What a verify job checks (CopyOptions.verify).
struct VerifyOptions {
  // Values too (DUMP payloads, by content where they differ); else type, TTL and length.
  bool full = true;
  // How far apart the two expiries of a key may be beyond the time the reads took.
  absl::Duration ttl_tolerance = absl::Milliseconds(1000);
  // A key that differs is read again on both sides this many times (with growing pauses) while
  // its source value keeps changing, before it is reported.
  int max_rechecks = 3;
};

// Set by the controller for a live job's watch lease while it runs (LiveControl). Written by
// the agent's stream thread, read by the watcher.
struct LiveSignals {
  // Apply dirty keys to the target; false: only collect them (a pass over the node runs).
  std::atomic<bool> apply{false};
  // `apply` holds only while the watcher's subscription count (LiveStatus.subscriptions) equals
  // this: after a gap and a new subscription the watcher waits for the controller's next word,
  // sent once the rescan the gap needs is complete.
  std::atomic<uint64_t> apply_subscription{0};
  // The latest cutover request; 0: none.
  std::atomic<uint64_t> cutover_seq{0};
};

// What a live job's leases need (CopyOptions.live).
struct LiveOptions {
  // Bound on the dirty set: key bytes plus about 64 bytes per key.
  uint64_t dirty_bytes = wire::kDefaultLiveDirtyBytes;
  // The lease's signals (owned by its LeaseRunner); null outside a watch lease.
  const LiveSignals* signals = nullptr;
};

struct CopyOptions {
  int batch_keys = wire::kDefaultBatchKeys;   // SCAN COUNT and pipeline depth.
  uint64_t max_bytes_in_flight = 2ull << 20;  // Read but not yet written, per shard.
  OnConflict on_conflict = OnConflict::kReplace;
  bool dry_run = false;  // Read and count; write nothing.
  // Every key type by type (JobSpec.copy_path); otherwise DUMP/RESTORE where the target reads
  // the payloads.
  bool typed_only = false;
  uint64_t big_key_bytes = wire::kDefaultBigKeyBytes;  // Copied in chunks above (MEMORY USAGE).
  bool drop_field_ttls = false;
  // Set: compare the shard's keys with the other side instead of copying them (a verify job);
  // nothing is written.
  std::optional<VerifyOptions> verify;
  // Set for the leases of a live job: watch shards follow the source (agent/live_watcher.h),
  // shards resumed at Checkpoint.pass > 0 compare and fix instead of copying.
  std::optional<LiveOptions> live;
  // Paces the bytes this shard reads from the source (JobSpec.rate_limit_bytes' share); null:
  // no limit. Set by the lease's runner, which owns it.
  RateLimiter* byte_limiter = nullptr;
  int max_retries = 6;  // Transient failures in a row before giving up.
  absl::Duration initial_backoff = absl::Milliseconds(200);
  redis::ConnectOptions connect;
  // Told the round trips and the retries of the job's source's and target's connections (the
  // agent's metrics); null: nobody. Not owned.
  redis::IoObserver* source_io = nullptr;
  redis::IoObserver* target_io = nullptr;

  // `connect` with the observer of the job's source, or of its target.
  redis::ConnectOptions SourceConnect() const { return WithObserver(source_io); }
  redis::ConnectOptions TargetConnect() const { return WithObserver(target_io); }
  redis::ConnectOptions WithObserver(redis::IoObserver* observer) const {
    redis::ConnectOptions side = connect;
    side.observer = observer;
    return side;
  }
};

struct CopyCallbacks {
  // After written batches, from the copying thread. Persist before acknowledging. A copy
  // that writes to a target reports the latest of its batches' checkpoints once their
  // writes' replication offsets were read (CheckpointGate), not every batch's.
  std::function<void(const Checkpoint&)> on_checkpoint;
  // After each batch a sink wrote or compared, before its checkpoint goes on (or is held back):
  // what times batches (ferry_agent_batch_seconds), which on_checkpoint no longer can.
  std::function<void()> on_batch;
  // A key that could not be copied, with a reason that never contains its value.
  std::function<void(const std::string& key, const std::string& reason)> on_failed_key;
  // An attempt failed with a transient error (`status`): the copy reconnects and goes on from
  // its last checkpoint after a pause.
  std::function<void(const absl::Status& status)> on_retry;
};

// Copies one shard from `resume` (a default Checkpoint starts at the shard's start cursor)
// until the shard is finished, `cancel` becomes true (returns CANCELLED after checkpointing), or
// a fatal error (auth, NOPERM, OOM, RESTORE not permitted) or too many transient errors in a row.
// A resume checkpoint whose run_id differs from the source's restarts at the start cursor.
// Cluster source: each attempt first finds the node serving the shard's slots now (a failover
// restarts the walk on the new primary); after the walk, slots that moved away meanwhile are
// read again from their new owners. A cluster target gets each RESTORE on the primary of its
// key's slot, through MOVED, ASK, TRYAGAIN and failovers (redis::Router); checkpoints of a
// copy reach on_checkpoint only once the target's replication offsets cover their writes
// (CheckpointGate), at most about a second after the batch.
// `limiter` (may be null) paces this shard's reads; each lease owns one, set to its share of the
// job's rate by the controller. Blocking; uses one extra thread to read the next batch while this
// one is written.
absl::Status CopyShard(const ShardSpec& spec, const CopyOptions& options, const Checkpoint& resume,
                       RateLimiter* limiter, const std::atomic<bool>* cancel,
                       const CopyCallbacks& callbacks);

}  // namespace ferry::agent
