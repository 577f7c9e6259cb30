#pragma once

// Conversions between the AgentHub wire messages (ferry.proto) and the copy engine's types: a
// lease into the shard to copy and its options, checkpoints both ways.

#include <string>

#include "absl/status/statusor.h"
#include "agent/copier.h"
#include "ferry/v1/ferry.pb.h"

namespace ferry::agent {

void CheckpointToProto(const Checkpoint& c, ferry::v1::Checkpoint* out);
Checkpoint CheckpointFromProto(const ferry::v1::Checkpoint& c);

// The shard a lease names. A cluster source (`slots` set) keeps the source URI as the way into
// the cluster; otherwise `source_node`, when set, replaces the URI's host and port.
// INVALID_ARGUMENT for a lease that names no valid shard.
absl::StatusOr<ShardSpec> SpecFromLease(const ferry::v1::ControllerMessage::Lease& lease);

// `defaults` with what the lease sets: batch size, conflict policy, dry run.
CopyOptions CopyOptionsFromLease(const CopyOptions& defaults,
                                 const ferry::v1::ControllerMessage::Lease& lease);

// One line for logs; passwords redacted.
std::string DescribeLease(const ferry::v1::ControllerMessage::Lease& lease, const ShardSpec& spec);

}  // namespace ferry::agent
