#pragma once

#include "server/plan_types.h"

namespace ferry::server {

// The controller's Planner: preflight and shard planning against the job's real servers
// (PlanCopy in planner.h).
class RedisPlanner : public Planner {
 public:
  absl::StatusOr<PlanResult> Plan(const ferry::v1::JobSpec& spec) override;
};

}  // namespace ferry::server
