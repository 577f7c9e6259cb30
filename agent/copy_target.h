#pragma once

// The target side of a shard that writes (copies, live watches, rescan passes): its router,
// every connection checked by TargetGuard, the TTL mapping for its nodes and what they read.

#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/copier.h"
#include "agent/expiry.h"
#include "agent/target_guard.h"
#include "agent/target_probe.h"
#include "common/redis/router.h"

namespace ferry::agent {

// The target's router, the TTL mapping for its nodes and what they can read; none in a dry run.
struct Target {
  std::unique_ptr<redis::Router> router;
  ExpiryMapper expiry;
  std::optional<TargetFacts> facts;
};

// Opens the target of `spec` (every connection checked by `guard`), measures every primary's
// clock and probes what each reads. An empty Target in a dry run.
absl::StatusOr<Target> OpenTarget(const ShardSpec& spec, const CopyOptions& options,
                                  TargetGuard& guard);

// Every primary of the target that serves slots (the server itself, standalone, in the shard's
// target db), as `router` knows it now.
std::vector<redis::Endpoint> TargetNodes(const ShardSpec& spec, const redis::Router& router);

}  // namespace ferry::agent
