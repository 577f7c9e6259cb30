#pragma once

// Proves that what a shard wrote is still on the target (DESIGN.md, "Honesty rules"). Each
// target server process is remembered in the shard's checkpoint (planned by the controller's
// preflight, or learned at the first connection to a node found later). A connection that finds
// another run_id at a known address means the node restarted and may have lost what was written
// to it; a node whose evicted_keys grew dropped keys. Both are DATA_LOSS: the shard fails and so
// does the job, rather than end "done" over missing keys.

#include <vector>

#include "absl/status/status.h"
#include "agent/copier.h"
#include "common/redis/connection.h"

namespace ferry::agent {

// Used on the shard's copying thread only.
class TargetGuard {
 public:
  // `nodes` (the checkpoint's target_nodes) must outlive the guard; new nodes are added to it.
  explicit TargetGuard(std::vector<TargetNode>* nodes) : nodes_(nodes) {}

  // Reads the INFO of the target node behind `connection` (on every connection the shard opens
  // to the target, through redis::Router's on_connect, and at the end of the shard on each node):
  // DATA_LOSS when the node is another process than the one remembered at its address, or when
  // it evicted keys since then. A node seen for the first time is remembered unless it is a
  // replica (nothing is written to one: a cluster seed that is a replica may restart); a target
  // user that may not run INFO is not checked.
  absl::Status Check(redis::Connection& connection);

  // Check() on what Inspect() read: the comparison alone.
  absl::Status Observe(const TargetNode& seen);

  // What INFO says of the node behind `connection`; run_id empty when INFO is not permitted.
  static absl::StatusOr<TargetNode> Inspect(redis::Connection& connection);

 private:
  TargetNode* Find(const std::string& address);

  std::vector<TargetNode>* nodes_;
};

}  // namespace ferry::agent
