#include "server/redis_planner.h"

#include "common/base/status_macros.h"
#include "proto/ferry/v1/ferry.pb.h"
#include "server/job_spec.h"
#include "server/planner.h"

namespace ferry::server {

absl::StatusOr<PlanResult> RedisPlanner::Plan(const ferry::v1::JobSpec& spec) {
  PlanRequest request;
  FERRY_ASSIGN_OR_RETURN(request.source, EndpointFromSpec(spec.source()));
  FERRY_ASSIGN_OR_RETURN(request.target, EndpointFromSpec(spec.target()));
  request.dbs.assign(spec.dbs().begin(), spec.dbs().end());
  if (spec.has_target_db()) request.target_db = spec.target_db();
  request.shards = spec.shards();
  request.dry_run = spec.dry_run();
  FERRY_ASSIGN_OR_RETURN(server::Plan plan, PlanCopy(request));
  PlanResult result;
  result.estimated_keys = plan.estimated_keys;
  result.warnings = std::move(plan.warnings);
  const std::string node = request.source.Address();
  for (const PlannedShard& s : plan.shards) {
    result.shards.push_back({node, s.source_db, s.target_db, s.shard_bits, s.shard_index});
  }
  return result;
}

}  // namespace ferry::server
