// The CLUSTER SHARDS and CLUSTER SLOTS parsers (common/redis/cluster.h) on replies that
// hiredis' reader builds from the fuzz bytes: a topology, when one is returned, keeps the
// header's promises (sorted, merged, valid slot ranges; one owner per slot; real ports).

#include <fuzzer/FuzzedDataProvider.h>

#include <string>

#include "common/redis/cluster.h"
#include "common/redis/slot.h"
#include "fuzz/fuzz_support.h"

namespace ferry::fuzz {
namespace {

void CheckTopology(const redis::ClusterTopology& topology, const std::string& seed_host) {
  for (const redis::ClusterNode& node : topology.nodes) {
    Check(!node.id.empty(), "a node without id");
    Check(node.port >= 1 && node.port <= 65535, "a node with a port out of range");
    Check(!node.host.empty() || seed_host.empty(), "an empty host");
    Check(node.primary || node.slots.empty(), "a replica with slots");
    for (size_t i = 0; i < node.slots.size(); ++i) {
      const auto& [first, last] = node.slots[i];
      Check(first >= 0 && first <= last && last < redis::kClusterSlots, "a bad slot range");
      Check(i == 0 || node.slots[i - 1].second + 1 < first, "ranges not sorted and merged");
    }
    const redis::Endpoint endpoint = redis::NodeEndpoint(redis::Endpoint(), node);
    Check(endpoint.port == node.port && !endpoint.db.has_value(), "NodeEndpoint");
    if (node.primary) (void)topology.HealthyReplicasOf(node.id);
  }
  const std::vector<const redis::ClusterNode*> owners = topology.OwnerTable();
  Check(owners.size() == static_cast<size_t>(redis::kClusterSlots), "owner table size");
  int covered = 0;
  for (int slot = 0; slot < redis::kClusterSlots; slot += 97) {
    Check(owners[slot] == topology.OwnerOf(slot), "OwnerTable and OwnerOf disagree");
  }
  for (const redis::ClusterNode* owner : owners) covered += owner != nullptr;
  Check(covered == topology.CoveredSlots(), "CoveredSlots and OwnerTable disagree");
  (void)topology.Primaries();
}

}  // namespace
}  // namespace ferry::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace redis = ferry::redis;
  FuzzedDataProvider input(data, size);
  const bool tls = input.ConsumeBool();
  const std::string seed_host = input.ConsumeBool() ? "seed.example" : "";
  const std::string bytes = input.ConsumeRemainingBytesAsString();
  for (const redis::Reply& reply : ferry::fuzz::ParseReplies(bytes, 4)) {
    absl::StatusOr<redis::ClusterTopology> shards =
        redis::TopologyFromShards(reply, seed_host, tls);
    if (shards.ok()) ferry::fuzz::CheckTopology(*shards, seed_host);
    absl::StatusOr<redis::ClusterTopology> slots = redis::TopologyFromSlots(reply, seed_host);
    if (slots.ok()) ferry::fuzz::CheckTopology(*slots, seed_host);
  }
  return 0;
}
