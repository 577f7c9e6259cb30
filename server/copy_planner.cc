#include "server/copy_planner.h"

#include <utility>

#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/redis/connection.h"
#include "ferry/v1/ferry.pb.h"
#include "proto/wire/endpoint.h"
#include "proto/wire/job_defaults.h"
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
  request.type = spec.type();
  request.replace = spec.on_conflict() == ferry::v1::ON_CONFLICT_REPLACE;
  request.typed_only = spec.copy_path() == ferry::v1::COPY_PATH_TYPED;
  if (spec.big_key_bytes() > 0) request.big_key_bytes = spec.big_key_bytes();
  request.verify = spec.kind() == ferry::v1::JOB_KIND_VERIFY;
  request.live = spec.live();
  request.drop_field_ttls = spec.drop_field_ttls();
  if (spec.parallel() > 0) request.parallel = spec.parallel();
  return request;
}

namespace {

// The shortest of two PINGs to `endpoint`; zero when it cannot be measured (the plan's own
// checks report why).
absl::Duration RoundTrip(const redis::Endpoint& endpoint, const redis::ConnectOptions& options) {
  absl::StatusOr<redis::Connection> conn = redis::Connection::Open(endpoint, options);
  if (!conn.ok()) return absl::ZeroDuration();
  absl::Duration shortest = absl::InfiniteDuration();
  for (int i = 0; i < 2; ++i) {
    const absl::Time start = absl::Now();
    (void)conn->Command({"PING"});  // Refused by an ACL, it still went there and back.
    if (conn->broken()) return absl::ZeroDuration();
    shortest = std::min(shortest, absl::Now() - start);
  }
  return shortest;
}

}  // namespace

int AutoParallel(absl::Duration round_trip) {
  const int64_t steps = 1 + absl::ToInt64Microseconds(round_trip) / wire::kAutoParallelRttMicros;
  return static_cast<int>(
      std::min<int64_t>(wire::kMaxAutoParallelPerNode, steps * wire::kDefaultParallelPerNode));
}

absl::StatusOr<PlanResult> CopyPlanner::Plan(const ferry::v1::JobSpec& spec) {
  FERRY_ASSIGN_OR_RETURN(PlanRequest request, PlanRequestFromSpec(spec));
  FERRY_ASSIGN_OR_RETURN(server::Plan plan, PlanCopy(request));
  PlanResult result;
  if (spec.parallel() == 0) {
    // Far from the servers, more shards at once keep them busy (the agents usually run where
    // the controller does; `--parallel` sets it by hand).
    absl::Duration rtt = RoundTrip(request.source, request.connect);
    if (!request.dry_run) rtt = std::max(rtt, RoundTrip(request.target, request.connect));
    result.parallel = AutoParallel(rtt);
    if (result.parallel != wire::kDefaultParallelPerNode) {
      FERRY_LOG(Info) << "round trip " << absl::FormatDuration(rtt) << ": " << result.parallel
                      << " shards at once per source node";
    }
  }
  result.shards = std::move(plan.shards);
  result.target_nodes = std::move(plan.target_nodes);
  result.estimated_keys = plan.estimated_keys;
  result.warnings = std::move(plan.warnings);
  return result;
}

}  // namespace ferry::server
