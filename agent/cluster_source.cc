#include "agent/cluster_source.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/base/status_macros.h"

namespace ferry::agent {
namespace {

using redis::ClusterNode;
using redis::ClusterTopology;
using redis::SlotSet;

constexpr absl::Duration kSettlePoll = absl::Milliseconds(100);

// `host:port` or `[v6]:port` into an endpoint like `seed`; nullopt when malformed.
std::optional<redis::Endpoint> EndpointOfAddress(const redis::Endpoint& seed,
                                                 absl::string_view address) {
  const std::optional<redis::HostPort> parsed = redis::ParseAddress(address);
  if (!parsed.has_value()) return std::nullopt;
  ClusterNode node;
  node.host = parsed->host;
  node.port = parsed->port;
  return redis::NodeEndpoint(seed, node);
}

}  // namespace

ClusterNode ReadNodeOf(const ClusterTopology& topology, const ClusterNode& owner,
                       ReadFrom read_from, uint64_t spread) {
  if (read_from != ReadFrom::kReplica) return owner;
  const std::vector<const ClusterNode*> replicas = topology.HealthyReplicasOf(owner.id);
  if (replicas.empty()) return owner;
  return *replicas[spread % replicas.size()];
}

absl::StatusOr<SourceChoice> ChooseSource(const ClusterTopology& topology, const SlotSet& slots,
                                          const std::string& planned_node,
                                          const std::string& current_node, ReadFrom read_from,
                                          uint64_t spread) {
  const std::vector<const ClusterNode*> owner_of = topology.OwnerTable();
  std::vector<std::pair<const ClusterNode*, int>> counts;  // In topology order.
  for (const ClusterNode& node : topology.nodes) {
    if (node.primary) counts.emplace_back(&node, 0);
  }
  for (const auto& [first, last] : slots.Ranges()) {
    for (int slot = first; slot <= last; ++slot) {
      for (auto& [node, count] : counts) count += node == owner_of[slot];
    }
  }
  auto count_of = [&counts](const ClusterNode* primary) {
    for (const auto& [node, count] : counts) {
      if (node == primary) return count;
    }
    return 0;
  };
  const ClusterNode* best = nullptr;
  const ClusterNode* read = nullptr;
  for (const ClusterNode& node : topology.nodes) {
    if (current_node.empty() || ClusterSource::Address(node) != current_node) continue;
    if (node.primary && count_of(&node) > 0) {
      best = read = &node;
    } else if (!node.primary && read_from == ReadFrom::kReplica) {
      for (const auto& [primary, count] : counts) {
        if (primary->id == node.primary_id && count > 0) {
          best = primary;
          read = &node;
        }
      }
    }
  }
  int best_count = 0;
  for (const auto& [node, count] : counts) {
    if (read != nullptr) break;
    const bool planned = ClusterSource::Address(*node) == planned_node;
    if (count > best_count || (count == best_count && count > 0 && planned)) {
      best = node;
      best_count = count;
    }
  }
  if (best == nullptr) {
    return absl::UnavailableError(absl::StrCat("no primary of the source cluster serves slots ",
                                               redis::FormatSlotRanges(slots.Ranges())));
  }
  SourceChoice choice;
  choice.owner = *best;
  choice.read = read != nullptr ? *read : ReadNodeOf(topology, *best, read_from, spread);
  choice.group.push_back(best->id);
  for (const ClusterNode* replica : topology.ReplicasOf(best->id)) {
    choice.group.push_back(replica->id);
  }
  for (const auto& [first, last] : slots.Ranges()) {
    for (int slot = first; slot <= last; ++slot) {
      (owner_of[slot] == best ? choice.owned : choice.foreign).Add(slot);
    }
  }
  return choice;
}

SlotSet MovedAway(const ClusterTopology& now, const SlotSet& owned,
                  const std::vector<std::string>& group) {
  const std::vector<const ClusterNode*> owner_of = now.OwnerTable();
  SlotSet moved;
  for (const auto& [first, last] : owned.Ranges()) {
    for (int slot = first; slot <= last; ++slot) {
      const ClusterNode* owner = owner_of[slot];
      if (owner == nullptr || std::find(group.begin(), group.end(), owner->id) == group.end()) {
        moved.Add(slot);
      }
    }
  }
  return moved;
}

SlotSet MigratingSlots(absl::string_view cluster_nodes) {
  SlotSet migrating;
  for (absl::string_view line : absl::StrSplit(cluster_nodes, '\n', absl::SkipWhitespace())) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    if (fields.size() < 3 || !absl::StrContains(fields[2], "myself")) continue;
    for (size_t i = 8; i < fields.size(); ++i) {
      absl::string_view field = fields[i];
      const size_t arrow = field.find("->-");
      int slot = 0;
      if (field.size() > 1 && field.front() == '[' && arrow != absl::string_view::npos &&
          absl::SimpleAtoi(field.substr(1, arrow - 1), &slot) && slot >= 0 &&
          slot < redis::kClusterSlots) {
        migrating.Add(slot);
      }
    }
  }
  return migrating;
}

ClusterSource::ClusterSource(const ShardSpec& spec, const redis::ConnectOptions& options)
    : seed_(spec.source), options_(options) {
  redis::Endpoint seed = spec.source;
  seed.db.reset();
  if (std::optional<redis::Endpoint> planned = EndpointOfAddress(seed, spec.source_node)) {
    candidates_.push_back(*planned);
  }
  candidates_.push_back(seed);
}

std::string ClusterSource::Address(const ClusterNode& node) {
  return absl::StrContains(node.host, ':') ? absl::StrCat("[", node.host, "]:", node.port)
                                           : absl::StrCat(node.host, ":", node.port);
}

absl::StatusOr<ClusterTopology> ClusterSource::Discover() {
  absl::Status last = absl::UnavailableError("no node of the source cluster is known");
  for (size_t i = 0; i < candidates_.size(); ++i) {
    absl::StatusOr<redis::Connection> connection =
        redis::Connection::Open(candidates_[i], options_);
    absl::StatusOr<ClusterTopology> topology =
        connection.ok() ? redis::DiscoverTopology(*connection) : connection.status();
    if (!topology.ok() || topology->Primaries().empty()) {
      last =
          topology.ok() ? absl::UnavailableError("the node knows no primaries") : topology.status();
      last = Annotate(last, absl::StrCat("source node ", candidates_[i].Address()));
      continue;
    }
    // Nodes seen now answer the next time if these two are gone.
    for (const ClusterNode& node : topology->nodes) {
      const redis::Endpoint endpoint = redis::NodeEndpoint(seed_, node);
      const bool known = std::any_of(candidates_.begin(), candidates_.end(), [&](const auto& e) {
        return e.host == endpoint.host && e.port == endpoint.port;
      });
      if (!known) candidates_.push_back(endpoint);
    }
    return topology;
  }
  return Annotate(last, "discovering the source cluster");
}

absl::StatusOr<SlotSet> ClusterSource::Migrating(const ClusterTopology& topology,
                                                 const SlotSet& slots) {
  SlotSet migrating;
  for (const ClusterNode* owner : topology.Primaries()) {
    SlotSet served = SlotSet::FromRanges(owner->slots);
    served &= slots;
    if (served.empty()) continue;
    FERRY_ASSIGN_OR_RETURN(redis::Connection connection,
                           redis::Connection::Open(redis::NodeEndpoint(seed_, *owner), options_));
    absl::StatusOr<redis::Reply> nodes = connection.Command({"CLUSTER", "NODES"});
    // A user that may not see migrations cannot wait for them: the slot map alone decides.
    if (!nodes.ok() && nodes.status().code() == absl::StatusCode::kPermissionDenied) continue;
    if (!nodes.ok()) return nodes.status();
    SlotSet moving = MigratingSlots(nodes->str());
    moving &= served;
    migrating |= moving;
  }
  return migrating;
}

absl::StatusOr<ClusterTopology> ClusterSource::DiscoverSettled(const SlotSet& slots,
                                                               absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    FERRY_ASSIGN_OR_RETURN(ClusterTopology topology, Discover());
    FERRY_ASSIGN_OR_RETURN(SlotSet migrating, Migrating(topology, slots));
    if (migrating.empty()) return topology;
    if (absl::Now() >= deadline) {
      return absl::UnavailableError(
          absl::StrCat("source slots ", redis::FormatSlotRanges(migrating.Ranges()),
                       " are still being migrated after ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(kSettlePoll);
  }
}

absl::StatusOr<redis::Connection> ClusterSource::OpenForReading(const ClusterNode& node) {
  FERRY_ASSIGN_OR_RETURN(redis::Connection connection,
                         redis::Connection::Open(redis::NodeEndpoint(seed_, node), options_));
  if (!node.primary) FERRY_RETURN_IF_ERROR(connection.Command({"READONLY"}).status());
  return connection;
}

}  // namespace ferry::agent
