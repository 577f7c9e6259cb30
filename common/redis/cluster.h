#pragma once

// Redis Cluster topology: which nodes exist, which primary owns which slots, which replicas
// follow which primary. Discovered with CLUSTER SHARDS (Redis 7.0+) or CLUSTER SLOTS (older
// servers, or where SHARDS is refused).

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/redis/connection.h"
#include "common/redis/endpoint.h"

namespace ferry::redis {

struct ClusterNode {
  // The 40-hex node id; "host:port" when the server does not report ids (Redis < 4).
  std::string id;
  // As announced by the cluster; an empty or "?" announcement is replaced by the host the
  // topology was read through (the seed's host).
  std::string host;
  int port = 0;
  bool primary = false;
  // The primary this replica follows; empty for a primary.
  std::string primary_id;
  // Inclusive slot ranges [first, last], sorted; empty for replicas and slotless primaries.
  std::vector<std::pair<int, int>> slots;
  // CLUSTER SHARDS reports the node as failed (CLUSTER SLOTS omits such replicas).
  bool failed = false;
};

struct ClusterTopology {
  std::vector<ClusterNode> nodes;  // Primaries and replicas.

  // The primary that serves `slot`; nullptr when no node covers it.
  const ClusterNode* OwnerOf(int slot) const;
  // slot -> the primary serving it (null where none does), for callers that ask per slot.
  std::vector<const ClusterNode*> OwnerTable() const;
  std::vector<const ClusterNode*> Primaries() const;
  std::vector<const ClusterNode*> ReplicasOf(const std::string& primary_id) const;
  // The replicas of `primary_id` not reported failed, by node id: the order in which shards are
  // spread over replicas (agents) and in which they are probed (preflight), so both agree.
  std::vector<const ClusterNode*> HealthyReplicasOf(const std::string& primary_id) const;
  // Number of slots covered by some primary (16384 when the cluster is fully covered).
  int CoveredSlots() const;
};

// Reads the topology through `any_node` (a primary or a replica): CLUSTER SHARDS, falling back
// to CLUSTER SLOTS when SHARDS is unknown or refused. The connection must have no pipelined
// replies pending. Transport errors are UNAVAILABLE; a malformed reply is INTERNAL.
absl::StatusOr<ClusterTopology> DiscoverTopology(Connection& any_node);

// The two parsers behind DiscoverTopology, exposed so tests can check that they agree.
// `seed_host` replaces empty and "?" hosts; `tls` picks the TLS port where SHARDS gives both.
absl::StatusOr<ClusterTopology> TopologyFromShards(ReplyView shards, const std::string& seed_host,
                                                   bool tls);
absl::StatusOr<ClusterTopology> TopologyFromSlots(ReplyView slots, const std::string& seed_host);

// Whether the server runs in cluster mode: `INFO cluster` (cluster_enabled:1), or, when INFO is
// refused (renamed, NOPERM), whether CLUSTER MYID answers. Transport errors are returned.
absl::StatusOr<bool> DetectClusterMode(Connection& connection);
// DetectClusterMode with any error read as "not a cluster".
bool IsClusterEnabled(Connection& connection);

// The endpoint of `node`: a copy of `seed` (credentials, TLS settings, CA, an explicit TLS
// server name) with host and port replaced and no db (a cluster only has db 0).
Endpoint NodeEndpoint(const Endpoint& seed, const ClusterNode& node);

}  // namespace ferry::redis
