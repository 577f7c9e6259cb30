#pragma once

#include "server/plan_types.h"

namespace ferry::server {

// The controller's Planner: turns a JobSpec into a PlanRequest and runs PlanCopy (planner.h:
// preflight against the real servers, then per-database shards).
class CopyPlanner final : public Planner {
 public:
  absl::StatusOr<PlanResult> Plan(const ferry::v1::JobSpec& spec) override;
};

}  // namespace ferry::server
