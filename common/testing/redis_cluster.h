#pragma once

// A real Redis Cluster on loopback for integration tests: cluster-enabled RedisServer nodes
// joined by hand (ADDSLOTSRANGE, MEET, REPLICATE), resharding with `redis-cli --cluster
// reshard`, manual failovers, and a key-by-key comparison of clusters with clusters or
// standalone servers. Test support only.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/redis/cluster.h"
#include "common/redis/endpoint.h"
#include "common/testing/compare.h"
#include "common/testing/process.h"
#include "common/testing/redis_server.h"

namespace ferry::testing {

// Not thread-safe: one test thread drives it (a Router may write to the nodes meanwhile from
// another thread). The destructor kills every node.
class RedisCluster {
 public:
  // Starts primaries * (1 + replicas_per_primary) nodes and returns once every node says
  // cluster_state:ok, all agree on the slot map and every replica's link is up. Nodes 0 ..
  // primaries-1 are the primaries, each with an equal slot range in order; replicas follow,
  // those of primary 0 first. `base` applies to every node (cluster is forced on; requirepass
  // also sets masterauth; cluster-node-timeout is 3000 ms unless base.extra_config sets it).
  // TLS is not supported (each node would have its own CA): UNIMPLEMENTED.
  static absl::StatusOr<std::unique_ptr<RedisCluster>> Start(int primaries,
                                                             int replicas_per_primary,
                                                             RedisServerOptions base = {});

  RedisCluster(const RedisCluster&) = delete;
  RedisCluster& operator=(const RedisCluster&) = delete;
  ~RedisCluster();

  // Every node in creation order. Roles change with failovers: ask PrimaryIndices().
  const std::vector<std::unique_ptr<RedisServer>>& nodes() const { return nodes_; }
  RedisServer& node(int index) const { return *nodes_[index]; }
  // Node 0 (a primary at the start; any node serves as a seed for cluster clients).
  RedisServer& seed() const { return *nodes_[0]; }
  std::string uri() const { return seed().uri(); }
  redis::Endpoint endpoint() const { return seed().endpoint(); }
  const std::string& node_id(int index) const { return ids_[index]; }
  // Where redis-cli's output (Reshard) goes.
  std::string tool_log() const { return dir_ + "/redis-cli.log"; }

  // Indices of the running nodes that are primaries now.
  absl::StatusOr<std::vector<int>> PrimaryIndices() const;
  // The topology as the seed (or, when it is down, the first running node) sees it.
  absl::StatusOr<redis::ClusterTopology> Topology() const;

  // Starts `redis-cli --cluster reshard` moving `slots` slots from node `from_index` to node
  // `to_index` (both primaries), non-interactively; the caller waits for it (exit code 0 means
  // done) or lets it run alongside the test. Output goes to tool_log().
  absl::StatusOr<Subprocess> Reshard(int slots, int from_index, int to_index) const;

  // CLUSTER FAILOVER on a replica of node `primary_index` (FORCE when that node is down), then
  // waits until the roles switched and the cluster is healthy. Returns the new primary's index.
  absl::StatusOr<int> Failover(int primary_index);

  // Waits until every running node says cluster_state:ok and knows every node, all running
  // nodes agree on roles and slots with no slot migrating, every running replica's link is up
  // and every node's CLUSTER SLOTS lists every replica.
  absl::Status WaitHealthy(absl::Duration timeout = absl::Seconds(60)) const;

 private:
  RedisCluster() = default;
  absl::Status Join(int primaries, int replicas_per_primary);
  absl::Status CheckHealthy() const;
  int IndexOfPort(int port) const;

  std::string dir_;
  std::vector<std::unique_ptr<RedisServer>> nodes_;
  std::vector<std::string> ids_;
};

// Compares every key of `source` with `target`, each a standalone server (db `*_db`) or a
// cluster (detected; its db must be 0), like CompareDatabases: same diffs, values never in
// messages. A cluster side is first gathered from all its primaries into a scratch standalone
// server (PTTL + DUMP, RESTORE ... REPLACE), so the servers must share an RDB version and the
// data should be at rest.
absl::StatusOr<std::vector<KeyDiff>> CompareDeployments(const redis::Endpoint& source,
                                                        int source_db,
                                                        const redis::Endpoint& target,
                                                        int target_db,
                                                        const CompareOptions& options = {});

// CompareDeployments with `source`'s keys as the source side.
absl::StatusOr<std::vector<KeyDiff>> CompareClusterWith(const RedisCluster& source,
                                                        const redis::Endpoint& target,
                                                        int target_db = 0,
                                                        const CompareOptions& options = {});

}  // namespace ferry::testing
