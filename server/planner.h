#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/redis/connection.h"
#include "common/redis/endpoint.h"

namespace ferry::server {

// What to copy, as the planner needs it (a subset of a job's spec).
struct PlanRequest {
  redis::Endpoint source;
  redis::Endpoint target;
  std::vector<int> dbs;          // Empty: the source URI's db, else every non-empty database.
  std::optional<int> target_db;  // Every database goes there; unset: the same number.
  int shards = 0;                // Per database, rounded up to a power of two; 0: from key count.
  bool dry_run = false;          // Skips the target's write probes.
  redis::ConnectOptions connect;
};

struct PlannedShard {
  int source_db = 0;
  int target_db = 0;
  int shard_bits = 0;
  uint64_t shard_index = 0;
};

// The result of preflight and planning. Errors stop the job before any write; warnings are shown
// and stored on the job.
struct Plan {
  std::vector<PlannedShard> shards;
  std::map<int, uint64_t> keys_per_db;  // Selected databases only.
  uint64_t estimated_keys = 0;
  std::string source_run_id;
  std::vector<std::string> warnings;
};

// Preflight (reachability, AUTH, permission probes, same-server check, memory and version
// warnings) and the shard plan. Error codes: UNAVAILABLE (cannot connect), UNAUTHENTICATED,
// PERMISSION_DENIED (a needed command is forbidden), INVALID_ARGUMENT (the request makes no
// sense: target is the source, a database out of range...).
absl::StatusOr<Plan> PlanCopy(const PlanRequest& request);

// log2 of the number of shards for a database of `keys` keys: about 16k keys per shard, at most
// 1024 shards, one shard below 32k keys.
int ShardBitsForKeys(uint64_t keys);

// Parses `INFO keyspace` into db -> keys.
std::map<int, uint64_t> ParseKeyspace(absl::string_view info);

}  // namespace ferry::server
