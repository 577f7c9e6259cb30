#pragma once

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ferry/v1/ferry.pb.h"
#include "server/plan_types.h"
#include "server/planner.h"

namespace ferry::server {

// The controller's Planner: turns a JobSpec into a PlanRequest and runs PlanCopy (planner.h:
// preflight against the real servers, then per-database shards).
class CopyPlanner final : public Planner {
 public:
  absl::StatusOr<PlanResult> Plan(const ferry::v1::JobSpec& spec) override;
};

// What the planner needs of `spec` (passwords included): the one conversion, so that a job and
// `ferry preflight` plan the same request.
absl::StatusOr<PlanRequest> PlanRequestFromSpec(const ferry::v1::JobSpec& spec);

// Shards at once per source node for a spec that leaves JobSpec.parallel 0, whose farther side
// is `round_trip` away (job_defaults.h).
int AutoParallel(absl::Duration round_trip);

}  // namespace ferry::server
