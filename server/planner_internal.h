#pragma once

// What planner.cc, plan_checks.cc, planner_live.cc and preflight_run.cc share.

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "server/planner.h"
#include "server/preflight.h"
#include "server/preflight_report.h"

namespace ferry::server {

// The smallest b with 2^b >= n (at most 16).
int BitsFor(uint64_t n);
// log2 of the shards of a database of `keys` keys, or of request.shards when given.
int ShardBits(const PlanRequest& request, uint64_t keys);
// Where a key of source database `db` goes.
int TargetDbOf(const PlanRequest& request, const Deployment& target, int db);

// The shards over `source` (per database, or per primary of a cluster) and the database rules
// (a cluster has only db 0, the target is not the source...), then the cross-check that no
// database DBSIZE finds keys in is left out. `target` is unset for a dry run.
absl::Status PlanShards(const PlanRequest& request, const Deployment& source,
                        const std::optional<Deployment>& target, Plan& plan);

// Every check of a copy job, in order, and its plan (plan.shards, target_nodes...): both sides
// inspected (reachability, AUTH, each command the copy sends), what each side is, cluster
// topology and slot coverage, the databases, memory fit, a target that is not empty, the copy
// path, and for live jobs the keyspace notifications. Errors, warnings and facts go to
// `findings`; with findings.collect_all() every check whose inputs are there still runs after
// an error, else the first error ends them. PlanCopy and RunPreflight both run this.
void CheckAndPlan(const PlanRequest& request, Findings& findings, Plan& plan);

// A live job's extra shards (ferry.v1.ShardRef.watch): a watch per source primary (standalone:
// the server) and database copied, and reverse shards over the target that rescan passes use
// to delete keys the source lost during a gap. Checks on every source primary that keyspace
// notifications are on (an error when CONFIG shows they are not; when CONFIG is refused, a
// warning naming the ElastiCache parameter group, or with request.probe_key the event of a
// short-lived write of that key) and that the source user may PSUBSCRIBE to them.
void AddLiveShards(const PlanRequest& request, const Deployment& source, const Deployment& target,
                   Plan& plan, Findings& findings);

}  // namespace ferry::server
