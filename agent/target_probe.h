#pragma once

// What a shard learns about a target node before its first write, to choose how values are
// written (DESIGN.md, "Versions"): DUMP/RESTORE where the target reads the source's payloads,
// type by type where it cannot or where it refuses RESTORE.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/redis/capabilities.h"
#include "common/redis/connection.h"

namespace ferry::agent {

struct TargetFacts {
  redis::Capabilities caps = redis::Capabilities::ForVersion({4, 0});
  // The DUMP payload version the node writes: from a DUMP of a probe value, else the
  // capability table's number for its version.
  int payload_version = 8;
  bool restore_allowed = true;
  // Why RESTORE is not used (the node's refusal), for the log; empty when it is.
  std::string restore_refusal;

  // Whether the node reads a payload of this version.
  bool Reads(int payload) const {
    return redis::Capabilities::ReadsPayload(caps.engine(), payload_version, payload);
  }
};

// Reads INFO server and writes, dumps and restores a probe value (a key of ferry's own,
// "ferry:probe:{<tag>}:<random>", set with a 2 s TTL, restored with 1 ms and deleted) on `node`;
// a user without DEL leaves a key that has expired. `slot`: a
// slot the node serves (cluster), else -1. What cannot be probed (a user without SET or DUMP)
// falls back to the table; RESTORE refused as not permitted or unknown (ACL, rename-command)
// makes restore_allowed false. Transport errors are returned.
absl::StatusOr<TargetFacts> ProbeTarget(redis::Connection& node, int slot);

// The facts that hold for every node of a cluster target: the capabilities of the oldest node,
// the lowest payload version, RESTORE only when all allow it.
TargetFacts Weakest(const std::vector<TargetFacts>& nodes);

}  // namespace ferry::agent
