// A live job's plan beyond the copy's (planner_internal.h AddLiveShards): watches, reverse shards
// for rescans, and the check that the source publishes keyspace notifications.

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"
#include "common/redis/cluster.h"
#include "common/redis/connection.h"
#include "proto/wire/shard.h"
#include "server/planner_internal.h"

namespace ferry::server {
namespace {

// The notification classes a watcher needs besides K: generic commands, each type, expired and
// evicted keys.
constexpr absl::string_view kNeededClasses = "g$lshzxet";

// What `notify-keyspace-events` = `flags` lacks for live sync; empty when nothing.
std::string MissingClasses(absl::string_view flags) {
  std::string missing;
  if (!absl::StrContains(flags, 'K')) missing.push_back('K');
  if (absl::StrContains(flags, 'A')) return missing;
  for (char c : kNeededClasses) {
    if (!absl::StrContains(flags, c)) missing.push_back(c);
  }
  return missing;
}

// Checks one source primary's notifications: an error when they are known to be off or too
// narrow, a warning when CONFIG is refused (ElastiCache), nothing when they are on.
absl::Status CheckNotifications(const PlanRequest& request, const redis::Endpoint& node,
                                std::vector<std::string>* warnings) {
  redis::Endpoint endpoint = node;
  endpoint.db.reset();
  absl::StatusOr<redis::Connection> conn = redis::Connection::Open(endpoint, request.connect);
  if (!conn.ok()) return Annotate(conn.status(), absl::StrCat("source node ", node.Address()));
  absl::StatusOr<redis::Reply> reply = conn->Command({"CONFIG", "GET", "notify-keyspace-events"});
  if (!reply.ok()) return Annotate(reply.status(), absl::StrCat("source node ", node.Address()));
  if (reply->is_error() || !reply->is_array() || reply->size() < 2) {
    warnings->push_back(absl::StrCat(
        "live sync: cannot read notify-keyspace-events on source node ", node.Address(),
        " (CONFIG is refused, as on ElastiCache): it must include K and A, or the watchers see "
        "no writes; on ElastiCache set notify-keyspace-events = KA in the cluster's parameter "
        "group"));
    return absl::OkStatus();
  }
  const std::string flags(reply->element(1).str());
  const std::string missing = MissingClasses(flags);
  if (missing.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "live sync needs keyspace notifications on source node ", node.Address(),
      ": notify-keyspace-events is '", flags, "', which lacks '", missing,
      "'; run CONFIG SET notify-keyspace-events KA (on ElastiCache: set notify-keyspace-events "
      "= KA in the cluster's parameter group)"));
}

ferry::v1::ShardRef WatchShard(int source_db, int target_db) {
  ferry::v1::ShardRef shard;
  shard.set_watch(true);
  shard.set_source_db(source_db);
  shard.set_target_db(target_db);
  shard.set_shard_bits(-1);  // No slice has it: the store's key tells the watch from shard 0.
  shard.set_shard_index(0);
  return shard;
}

// Reverse shards of target database `target_db`, checked against source database `source_db`.
void AddReverseShards(const PlanRequest& request, const Deployment& target, int target_db,
                      int source_db, uint64_t source_keys, Plan& plan) {
  const auto add = [&](const std::string& node, int bits, uint64_t index,
                       redis::ScanScheme scheme, const redis::SlotRanges& slots) {
    ferry::v1::ShardRef& shard = plan.shards.emplace_back();
    shard.set_reverse(true);
    shard.set_source_node(node);
    shard.set_source_db(target_db);
    shard.set_target_db(source_db);
    shard.set_shard_bits(bits);
    shard.set_shard_index(index);
    shard.set_scan_scheme(wire::ScanSchemeToProto(scheme));
    wire::AddSlotRanges(slots, shard.mutable_slots());
  };
  if (!target.cluster()) {
    const int bits = ShardBits(request, source_keys);
    for (uint64_t i = 0; i < (uint64_t{1} << bits); ++i) {
      add(request.target.Address(), bits, i, target.seed.scheme, {});
    }
    return;
  }
  // The target is empty at planning: each primary is cut by its share of the source's keys.
  const uint64_t share = source_keys / std::max<size_t>(target.primaries.size(), 1);
  for (const ClusterPrimary& p : target.primaries) {
    const int bits = ShardBits(request, share);
    const std::string node = redis::NodeEndpoint(request.target, p.node).Address();
    if (p.facts.scheme == redis::ScanScheme::kPerSlot) {
      const redis::SlotRanges pieces = SplitSlots(p.node.slots, 1 << bits);
      const int piece_bits = BitsFor(pieces.size());
      for (size_t i = 0; i < pieces.size(); ++i) {
        add(node, piece_bits, i, p.facts.scheme, {pieces[i]});
      }
    } else {
      for (uint64_t i = 0; i < (uint64_t{1} << bits); ++i) {
        add(node, bits, i, p.facts.scheme, p.node.slots);
      }
    }
  }
}

}  // namespace

absl::Status AddLiveShards(const PlanRequest& request, const Deployment& source,
                           const Deployment& target, Plan& plan) {
  // Watches, after the notifications were checked on each primary.
  if (source.cluster()) {
    for (const ClusterPrimary& p : source.primaries) {
      const redis::Endpoint node = redis::NodeEndpoint(request.source, p.node);
      FERRY_RETURN_IF_ERROR(CheckNotifications(request, node, &plan.warnings));
      ferry::v1::ShardRef shard = WatchShard(0, TargetDbOf(request, target, 0));
      shard.set_source_node(node.Address());
      shard.set_scan_scheme(wire::ScanSchemeToProto(p.scheme));
      wire::AddSlotRanges(p.node.slots, shard.mutable_slots());
      plan.shards.push_back(std::move(shard));
    }
  } else {
    FERRY_RETURN_IF_ERROR(CheckNotifications(request, request.source, &plan.warnings));
    // An empty source is followed all the same: in the URI's database (or db 0).
    if (plan.keys_per_db.empty()) plan.keys_per_db[request.source.db.value_or(0)] = 0;
    for (const auto& [db, keys] : plan.keys_per_db) {
      plan.shards.push_back(WatchShard(db, TargetDbOf(request, target, db)));
    }
  }
  // Reverse shards, one set per target database that one source database fills.
  std::map<int, std::vector<int>> sources_of;  // target db -> source dbs
  for (const auto& [db, keys] : plan.keys_per_db) {
    sources_of[TargetDbOf(request, target, db)].push_back(db);
  }
  for (const auto& [target_db, source_dbs] : sources_of) {
    if (source_dbs.size() > 1) {
      plan.warnings.push_back(absl::StrCat(
          "live sync: a rescan after a gap in the notifications does not delete keys from "
          "target db ",
          target_db, " (source databases ", absl::StrJoin(source_dbs, ", "),
          " are merged into it): a key deleted on the source during a gap may stay there"));
      continue;
    }
    const int db = source_dbs.front();
    AddReverseShards(request, target, target_db, db, plan.keys_per_db.at(db), plan);
  }
  return absl::OkStatus();
}

}  // namespace ferry::server
