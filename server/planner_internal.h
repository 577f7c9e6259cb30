#pragma once

// What planner.cc shares with planner_live.cc.

#include <cstdint>

#include "absl/status/status.h"
#include "server/planner.h"
#include "server/preflight.h"

namespace ferry::server {

// The smallest b with 2^b >= n (at most 16).
int BitsFor(uint64_t n);
// log2 of the shards of a database of `keys` keys, or of request.shards when given.
int ShardBits(const PlanRequest& request, uint64_t keys);
// Where a key of source database `db` goes.
int TargetDbOf(const PlanRequest& request, const Deployment& target, int db);

// A live job's extra shards (ferry.v1.ShardRef.watch): a watch per source primary (standalone:
// the server) and database copied, and reverse shards over the target that rescan passes use
// to delete keys the source lost during a gap. Also checks on every source primary that
// keyspace notifications are on (an error when CONFIG shows they are not; a warning naming
// the ElastiCache parameter group when CONFIG is refused).
absl::Status AddLiveShards(const PlanRequest& request, const Deployment& source,
                           const Deployment& target, Plan& plan);

}  // namespace ferry::server
