#include "server/copy_planner.h"

#include <utility>

#include "common/base/status_macros.h"
#include "ferry/v1/ferry.pb.h"
#include "proto/wire/endpoint.h"
#include "server/planner.h"

namespace ferry::server {

absl::StatusOr<PlanRequest> PlanRequestFromSpec(const ferry::v1::JobSpec& spec) {
  PlanRequest request;
  FERRY_ASSIGN_OR_RETURN(request.source, wire::EndpointFromSpec(spec.source()));
  FERRY_ASSIGN_OR_RETURN(request.target, wire::EndpointFromSpec(spec.target()));
  request.dbs.assign(spec.dbs().begin(), spec.dbs().end());
  if (spec.has_target_db()) request.target_db = spec.target_db();
  request.merge_dbs = spec.merge_dbs();
  request.read_from_replicas = spec.read_from() == ferry::v1::READ_FROM_REPLICA;
  request.shards = spec.shards();
  request.dry_run = spec.dry_run();
  request.match = spec.match();
  request.replace = spec.on_conflict() == ferry::v1::ON_CONFLICT_REPLACE;
  request.typed_only = spec.copy_path() == ferry::v1::COPY_PATH_TYPED;
  if (spec.big_key_bytes() > 0) request.big_key_bytes = spec.big_key_bytes();
  request.verify = spec.kind() == ferry::v1::JOB_KIND_VERIFY;
  request.live = spec.live();
  request.drop_field_ttls = spec.drop_field_ttls();
  if (spec.parallel() > 0) request.parallel = spec.parallel();
  return request;
}

absl::StatusOr<PlanResult> CopyPlanner::Plan(const ferry::v1::JobSpec& spec) {
  FERRY_ASSIGN_OR_RETURN(PlanRequest request, PlanRequestFromSpec(spec));
  FERRY_ASSIGN_OR_RETURN(server::Plan plan, PlanCopy(request));
  PlanResult result;
  result.shards = std::move(plan.shards);
  result.target_nodes = std::move(plan.target_nodes);
  result.estimated_keys = plan.estimated_keys;
  result.warnings = std::move(plan.warnings);
  return result;
}

}  // namespace ferry::server
