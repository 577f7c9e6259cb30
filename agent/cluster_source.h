#pragma once

// The nodes of a source cluster as one shard sees them: which node to read the shard's slots
// from now, which of them moved away while it was read, and connections to read them.
// DESIGN.md, "Misses are not normal", and issue 4 ("Topology changes on the source").

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/copier.h"
#include "common/redis/cluster.h"
#include "common/redis/connection.h"
#include "common/redis/endpoint.h"
#include "common/redis/slot.h"

namespace ferry::agent {

// Where a shard's slots are read from, chosen from one topology.
struct SourceChoice {
  redis::ClusterNode owner;  // The primary serving most of the shard's slots.
  redis::ClusterNode read;   // `owner`, or one of its replicas (ReadFrom::kReplica).
  // Ids of `owner` and of its replicas: a failover inside the group keeps the data read.
  std::vector<std::string> group;
  redis::SlotSet owned;    // Shard slots `owner` serves.
  redis::SlotSet foreign;  // Shard slots another primary serves, or none.
};

// Picks where to read `slots`. `current_node` (`host:port` the shard's cursor belongs to, may
// be empty) stays the node read while it serves some of `slots` (as a primary, or reading
// replicas, as a replica whose primary does): its cursor stays valid and the slots it lost are
// read elsewhere later. Otherwise the primary serving most of `slots` (ties: `planned_node`,
// then the first) and, with ReadFrom::kReplica, one of its healthy replicas: the `spread`-th
// modulo their number, so the shards of one primary share its replicas. A primary without a
// healthy replica is read itself. UNAVAILABLE when no primary serves any of `slots`.
absl::StatusOr<SourceChoice> ChooseSource(const redis::ClusterTopology& topology,
                                          const redis::SlotSet& slots,
                                          const std::string& planned_node,
                                          const std::string& current_node, ReadFrom read_from,
                                          uint64_t spread);

// The node to read `owner`'s keys from: itself, or with ReadFrom::kReplica one of its healthy
// replicas as in ChooseSource.
redis::ClusterNode ReadNodeOf(const redis::ClusterTopology& topology,
                              const redis::ClusterNode& owner, ReadFrom read_from, uint64_t spread);

// The slots of `owned` that `now` shows served by a primary outside `group` (or by none).
redis::SlotSet MovedAway(const redis::ClusterTopology& now, const redis::SlotSet& owned,
                         const std::vector<std::string>& group);

// The slots a node is migrating away, from its `CLUSTER NODES` text: `[slot->-id]` on the
// line flagged `myself`.
redis::SlotSet MigratingSlots(absl::string_view cluster_nodes);

// Discovers the source cluster for one shard, through the node its plan named, the source URI
// or any node seen since. Not thread-safe.
class ClusterSource {
 public:
  ClusterSource(const ShardSpec& spec, const redis::ConnectOptions& options);

  // The topology, from the first node that answers; UNAVAILABLE when none does.
  absl::StatusOr<redis::ClusterTopology> Discover();
  // Discover, once none of `slots` is being migrated away from its owner (a slot moves key by
  // key: until its migration ends, some of its keys are on each side). UNAVAILABLE after
  // `timeout`.
  absl::StatusOr<redis::ClusterTopology> DiscoverSettled(const redis::SlotSet& slots,
                                                         absl::Duration timeout);
  // A connection for reading keys from `node` (READONLY when it is a replica).
  absl::StatusOr<redis::Connection> OpenForReading(const redis::ClusterNode& node);
  // `node` as "host:port", for messages.
  static std::string Address(const redis::ClusterNode& node);

 private:
  // The slots of `slots` that their owners in `topology` are migrating away.
  absl::StatusOr<redis::SlotSet> Migrating(const redis::ClusterTopology& topology,
                                           const redis::SlotSet& slots);

  const redis::Endpoint seed_;
  const redis::ConnectOptions options_;
  std::vector<redis::Endpoint> candidates_;  // Asked in order by Discover.
};

}  // namespace ferry::agent
