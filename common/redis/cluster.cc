#include "common/redis/cluster.h"

#include <algorithm>
#include <climits>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/redis/errors.h"
#include "common/redis/info.h"
#include "common/redis/slot.h"

namespace ferry::redis {
namespace {

absl::Status ShapeError(absl::string_view command, absl::string_view what) {
  return absl::InternalError(absl::StrCat(command, ": unexpected reply shape (", what, ")"));
}

bool IsUnknownHost(absl::string_view host) { return host.empty() || host == "?"; }

// The value after `name` in a flat [name, value, name, value...] array; a nil view if absent.
ReplyView MapField(ReplyView map, absl::string_view name) {
  for (size_t i = 0; i + 1 < map.size(); i += 2) {
    if (map.element(i).str() == name) return map.element(i + 1);
  }
  return ReplyView(nullptr);
}

bool ValidSlot(int64_t slot) { return slot >= 0 && slot < kClusterSlots; }
// Checked before the port is narrowed to an int, so 2^32 + 6379 is not taken for 6379.
bool ValidPort(int64_t port) { return port > 0 && port <= 65535; }

// Sorts ranges and merges the adjacent and overlapping ones.
void NormalizeRanges(std::vector<std::pair<int, int>>* ranges) {
  std::sort(ranges->begin(), ranges->end());
  std::vector<std::pair<int, int>> merged;
  for (const auto& range : *ranges) {
    if (!merged.empty() && range.first <= merged.back().second + 1) {
      merged.back().second = std::max(merged.back().second, range.second);
    } else {
      merged.push_back(range);
    }
  }
  *ranges = std::move(merged);
}

// Primaries first, by their first slot; then replicas, by primary and id. Plans and tests like
// a stable order.
void SortNodes(ClusterTopology* topology) {
  auto key = [](const ClusterNode& node) {
    const int first = node.slots.empty() ? INT_MAX : node.slots.front().first;
    return std::make_tuple(!node.primary, first, node.primary_id, node.id);
  };
  std::sort(topology->nodes.begin(), topology->nodes.end(),
            [&](const ClusterNode& a, const ClusterNode& b) { return key(a) < key(b); });
}

// One node map of a CLUSTER SHARDS shard.
absl::StatusOr<ClusterNode> ShardNode(ReplyView map, const std::string& seed_host, bool tls) {
  ClusterNode node;
  node.id = std::string(MapField(map, "id").str());
  std::string host(MapField(map, "endpoint").str());
  if (host.empty()) host = std::string(MapField(map, "ip").str());
  node.host = IsUnknownHost(host) ? seed_host : host;
  ReplyView port = MapField(map, "port");
  ReplyView tls_port = MapField(map, "tls-port");
  ReplyView chosen =
      tls ? (tls_port.is_nil() ? port : tls_port) : (port.is_nil() ? tls_port : port);
  if (node.id.empty() || !ValidPort(chosen.integer())) {
    return ShapeError("CLUSTER SHARDS", "node without id/port");
  }
  node.port = static_cast<int>(chosen.integer());
  node.primary = MapField(map, "role").str() == "master";
  node.failed = MapField(map, "health").str() == "failed";
  return node;
}

}  // namespace

const ClusterNode* ClusterTopology::OwnerOf(int slot) const {
  for (const ClusterNode& node : nodes) {
    if (!node.primary) continue;
    for (const auto& [first, last] : node.slots) {
      if (slot >= first && slot <= last) return &node;
    }
  }
  return nullptr;
}

std::vector<const ClusterNode*> ClusterTopology::OwnerTable() const {
  std::vector<const ClusterNode*> owner(kClusterSlots, nullptr);
  for (const ClusterNode& node : nodes) {
    if (!node.primary) continue;
    for (const auto& [first, last] : node.slots) {
      // A slot two primaries claim (a malformed reply) is the first one's, as in OwnerOf.
      for (int slot = first; slot <= last; ++slot) {
        if (owner[slot] == nullptr) owner[slot] = &node;
      }
    }
  }
  return owner;
}

std::vector<const ClusterNode*> ClusterTopology::Primaries() const {
  std::vector<const ClusterNode*> out;
  for (const ClusterNode& node : nodes) {
    if (node.primary) out.push_back(&node);
  }
  return out;
}

std::vector<const ClusterNode*> ClusterTopology::ReplicasOf(const std::string& primary_id) const {
  std::vector<const ClusterNode*> out;
  for (const ClusterNode& node : nodes) {
    if (!node.primary && node.primary_id == primary_id) out.push_back(&node);
  }
  return out;
}

std::vector<const ClusterNode*> ClusterTopology::HealthyReplicasOf(
    const std::string& primary_id) const {
  std::vector<const ClusterNode*> out;
  for (const ClusterNode* replica : ReplicasOf(primary_id)) {
    if (!replica->failed) out.push_back(replica);
  }
  std::sort(out.begin(), out.end(),
            [](const ClusterNode* a, const ClusterNode* b) { return a->id < b->id; });
  return out;
}

int ClusterTopology::CoveredSlots() const {
  std::vector<bool> covered(kClusterSlots, false);
  for (const ClusterNode& node : nodes) {
    if (!node.primary) continue;
    for (const auto& [first, last] : node.slots) {
      for (int slot = first; slot <= last; ++slot) covered[slot] = true;
    }
  }
  return static_cast<int>(std::count(covered.begin(), covered.end(), true));
}

absl::StatusOr<ClusterTopology> TopologyFromShards(ReplyView shards, const std::string& seed_host,
                                                   bool tls) {
  if (!shards.is_array()) return ShapeError("CLUSTER SHARDS", "not an array");
  ClusterTopology topology;
  for (size_t s = 0; s < shards.size(); ++s) {
    ReplyView shard = shards.element(s);
    ReplyView slots = MapField(shard, "slots");
    ReplyView nodes = MapField(shard, "nodes");
    if (!nodes.is_array() || slots.size() % 2 != 0) return ShapeError("CLUSTER SHARDS", "shard");
    std::vector<std::pair<int, int>> ranges;
    for (size_t i = 0; i + 1 < slots.size(); i += 2) {
      const int64_t first = slots.element(i).integer();
      const int64_t last = slots.element(i + 1).integer();
      if (!ValidSlot(first) || !ValidSlot(last) || first > last) {
        return ShapeError("CLUSTER SHARDS", "slot range");
      }
      ranges.emplace_back(static_cast<int>(first), static_cast<int>(last));
    }
    NormalizeRanges(&ranges);
    const size_t shard_begin = topology.nodes.size();
    std::string primary_id;
    for (size_t n = 0; n < nodes.size(); ++n) {
      FERRY_ASSIGN_OR_RETURN(ClusterNode node, ShardNode(nodes.element(n), seed_host, tls));
      if (node.primary && primary_id.empty()) {
        primary_id = node.id;
        node.slots = ranges;
      } else {
        node.primary = false;  // At most one primary per shard.
      }
      topology.nodes.push_back(std::move(node));
    }
    for (size_t n = shard_begin; n < topology.nodes.size(); ++n) {
      if (!topology.nodes[n].primary) topology.nodes[n].primary_id = primary_id;
    }
  }
  SortNodes(&topology);
  return topology;
}

absl::StatusOr<ClusterTopology> TopologyFromSlots(ReplyView slots, const std::string& seed_host) {
  if (!slots.is_array()) return ShapeError("CLUSTER SLOTS", "not an array");
  ClusterTopology topology;
  // Finds or adds the node described by [host, port, id?, ...].
  auto node_for = [&](ReplyView entry) -> absl::StatusOr<ClusterNode*> {
    if (entry.size() < 2) return ShapeError("CLUSTER SLOTS", "node entry");
    ClusterNode node;
    node.host =
        IsUnknownHost(entry.element(0).str()) ? seed_host : std::string(entry.element(0).str());
    if (!ValidPort(entry.element(1).integer())) return ShapeError("CLUSTER SLOTS", "port");
    node.port = static_cast<int>(entry.element(1).integer());
    node.id = entry.size() > 2 ? std::string(entry.element(2).str()) : "";
    if (node.id.empty()) node.id = absl::StrCat(node.host, ":", node.port);
    for (ClusterNode& known : topology.nodes) {
      if (known.id == node.id) return &known;
    }
    topology.nodes.push_back(std::move(node));
    return &topology.nodes.back();
  };
  for (size_t r = 0; r < slots.size(); ++r) {
    ReplyView range = slots.element(r);
    const int64_t first = range.element(0).integer();
    const int64_t last = range.element(1).integer();
    if (range.size() < 3 || !ValidSlot(first) || !ValidSlot(last) || first > last) {
      return ShapeError("CLUSTER SLOTS", "slot range");
    }
    FERRY_ASSIGN_OR_RETURN(ClusterNode * primary, node_for(range.element(2)));
    primary->primary = true;
    primary->slots.emplace_back(static_cast<int>(first), static_cast<int>(last));
    const std::string primary_id = primary->id;  // node_for may reallocate `nodes`.
    for (size_t i = 3; i < range.size(); ++i) {
      FERRY_ASSIGN_OR_RETURN(ClusterNode * replica, node_for(range.element(i)));
      replica->primary_id = primary_id;
    }
  }
  for (ClusterNode& node : topology.nodes) NormalizeRanges(&node.slots);
  SortNodes(&topology);
  return topology;
}

absl::StatusOr<ClusterTopology> DiscoverTopology(Connection& any_node) {
  const std::string& seed_host = any_node.endpoint().host;
  absl::StatusOr<Reply> shards = any_node.Command({"CLUSTER", "SHARDS"});
  if (shards.ok()) {
    return TopologyFromShards(*shards, seed_host, any_node.endpoint().tls);
  }
  if (any_node.broken()) return shards.status();
  // Redis < 7.0 does not know SHARDS; a managed service may refuse it. SLOTS has everything
  // but slotless primaries and failed replicas.
  absl::StatusOr<Reply> slots = any_node.Command({"CLUSTER", "SLOTS"});
  if (!slots.ok()) return slots.status();
  return TopologyFromSlots(*slots, seed_host);
}

absl::StatusOr<bool> DetectClusterMode(Connection& connection) {
  FERRY_ASSIGN_OR_RETURN(std::optional<std::string> info, ReadInfo(connection, "cluster"));
  if (info.has_value()) return InfoField(*info, "cluster_enabled") == "1";
  // INFO renamed or forbidden by ACL: a cluster node answers CLUSTER MYID.
  absl::StatusOr<Reply> myid = connection.Command({"CLUSTER", "MYID"});
  if (myid.ok()) return true;
  if (!connection.broken() && Kind(myid.status().message()) == ReplyErrorKind::kNoCluster) {
    return false;
  }
  return Annotate(myid.status(), "cannot tell whether the server runs in cluster mode");
}

bool IsClusterEnabled(Connection& connection) {
  absl::StatusOr<bool> enabled = DetectClusterMode(connection);
  return enabled.ok() && *enabled;
}

Endpoint NodeEndpoint(const Endpoint& seed, const ClusterNode& node) {
  Endpoint endpoint = seed;
  if (!IsUnknownHost(node.host)) endpoint.host = node.host;
  endpoint.port = node.port;
  endpoint.db.reset();
  return endpoint;
}

}  // namespace ferry::redis
