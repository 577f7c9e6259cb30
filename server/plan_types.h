#pragma once

// What the scheduler needs from a planner, and the interface through which the controller calls
// one. Kept apart from planner.h (preflight and shard sizing against real servers) so that the
// scheduler and its tests need no Redis.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ferry/v1/ferry.pb.h"

namespace ferry::server {

// A target primary as preflight saw it (ferry.v1.TargetNode).
struct TargetNodeFacts {
  std::string address;        // host:port
  std::string run_id;         // Empty when the target user may not run INFO.
  int64_t evicted_keys = -1;  // -1: unknown.
};

// The shards of a job, as stored before the first lease.
struct PlanResult {
  // Made by the planner and stored unchanged (ferry.v1.ShardRef).
  std::vector<ferry::v1::ShardRef> shards;
  // Each target primary as preflight saw it; every shard's first checkpoint remembers them, so
  // an agent can tell a target that restarted or evicted keys (agent/target_guard.h).
  std::vector<TargetNodeFacts> target_nodes;
  uint64_t estimated_keys = 0;  // Keys in the selected source databases.
  // Shards at once per source node, chosen from the measured round trips for a spec that left
  // JobSpec.parallel 0 (job_defaults.h); 0: the spec's own.
  int parallel = 0;
  std::vector<std::string> warnings;  // Shown to the operator and stored on the job.
};

// Preflight and shard planning of one job. Called from the controller's planning thread, one job
// at a time; may block on the network for as long as it needs.
class Planner {
 public:
  virtual ~Planner() = default;
  // `spec` holds the passwords. Errors fail the job with their message, which must not contain a
  // password.
  virtual absl::StatusOr<PlanResult> Plan(const ferry::v1::JobSpec& spec) = 0;
};

}  // namespace ferry::server
