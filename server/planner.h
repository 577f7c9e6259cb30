#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/redis/connection.h"
#include "common/redis/endpoint.h"
#include "common/redis/scan_math.h"
#include "common/redis/slot.h"
#include "ferry/v1/ferry.pb.h"
#include "proto/wire/job_defaults.h"
#include "server/plan_types.h"

namespace ferry::server {

// What to copy, as the planner needs it (a subset of a job's spec).
struct PlanRequest {
  redis::Endpoint source;
  redis::Endpoint target;
  std::vector<int> dbs;          // Empty: the source URI's db, else every non-empty database.
  std::optional<int> target_db;  // Every database goes there; unset: the same number.
  // Several source databases go into db 0 (or target_db): the only way to copy more than one
  // into a cluster.
  bool merge_dbs = false;
  // Cluster source: read a replica of each primary rather than the primary.
  bool read_from_replicas = false;
  int shards = 0;        // Per database (cluster: per node), rounded up to a power of two; 0:
                         // from the key count.
  bool dry_run = false;  // Skips the target entirely.
  // SCAN MATCH pattern of the job (empty: all keys): the permission probes use a key it finds.
  std::string match;
  // SCAN TYPE filter of the job (empty: every type): a source without SCAN's TYPE option is
  // asked TYPE of each key.
  std::string type;
  // --on-conflict replace: the copy DELs target keys whose TTL ran out on the way. Otherwise it
  // reads (GET, DUMP) the target keys it finds there, to tell its own writes from conflicts.
  bool replace = true;
  // --copy-path typed: every key type by type.
  bool typed_only = false;
  // Keys above this size are never read whole, preflight's probes included.
  uint64_t big_key_bytes = wire::kDefaultBigKeyBytes;
  // Verify job: plan shards over both sides and probe only reads (nothing is written).
  bool verify = false;
  // Live job: watch shards for every source primary and database, reverse shards for rescans,
  // and the keyspace notifications checked (planner_live.cc).
  bool live = false;
  // --drop-field-ttls: hashes with field TTLs go into a target without them, TTLs dropped.
  bool drop_field_ttls = false;
  // Shards copied at once from each source node (JobSpec.parallel): preflight's estimate.
  int parallel = wire::kDefaultParallelPerNode;
  // ferry preflight: nothing is written to either side. The target's write commands are asked
  // with ACL DRYRUN where it answers, else probed on `probe_key` (a key the target does not
  // hold), else reported not checked.
  bool no_writes = false;
  // ferry preflight --probe-key: the one key preflight may name in the target's write probes
  // and write on the source (with a TTL of PX 2000, only when absent) to see its keyspace
  // event when CONFIG is refused (--live). Empty: none.
  std::string probe_key;
  // How errors and warnings name the side read: a verify job reads its target as a source too.
  std::string source_name = "source";
  redis::ConnectOptions connect;
};

// The result of preflight and planning. Errors stop the job before any write; warnings are shown
// and stored on the job (they are the warning findings of preflight_report.h, in order).
struct Plan {
  std::vector<ferry::v1::ShardRef> shards;
  std::map<int, uint64_t> keys_per_db;  // Selected databases only (cluster: db 0, all nodes).
  uint64_t estimated_keys = 0;
  std::string source_run_id;
  // Target primaries (the server, standalone) at planning.
  std::vector<TargetNodeFacts> target_nodes;
  std::vector<std::string> warnings;
};

// Preflight (reachability, AUTH, permission probes on every node read, same-deployment check,
// memory and version warnings, the databases a cluster target can take) and the shard plan:
// per database of a standalone source; per primary of a cluster source (db 0, sized from that
// node's own key count, in the cursor scheme of the node read). Error codes: UNAVAILABLE
// (cannot connect), UNAUTHENTICATED, PERMISSION_DENIED (a needed command is forbidden),
// INVALID_ARGUMENT (the request makes no sense: target is the source, a database out of range,
// several databases into a cluster without merge_dbs...), FAILED_PRECONDITION (the target
// cannot take the copy: too small and evicting...). The checks are CheckAndPlan's
// (planner_internal.h), which `ferry preflight` runs too (preflight_report.h RunPreflight).
absl::StatusOr<Plan> PlanCopy(const PlanRequest& request);

// log2 of the number of shards for a database of `keys` keys: about 16k keys per shard, at most
// 1024 shards, one shard below 32k keys.
int ShardBitsForKeys(uint64_t keys);

// Cuts `ranges` (a node's slots) into about `pieces` contiguous ranges of equal size; a range
// of the node is never joined with the next, so there may be more.
redis::SlotRanges SplitSlots(const redis::SlotRanges& ranges, int pieces);

// Parses `INFO keyspace` into db -> keys.
std::map<int, uint64_t> ParseKeyspace(absl::string_view info);

}  // namespace ferry::server
