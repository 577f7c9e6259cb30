#include "server/planner.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/status_macros.h"
#include "proto/wire/shard.h"
#include "server/planner_internal.h"
#include "server/preflight.h"

namespace ferry::server {

int BitsFor(uint64_t n) {
  int bits = 0;
  while ((uint64_t{1} << bits) < n && bits < 16) ++bits;
  return bits;
}

int ShardBits(const PlanRequest& request, uint64_t keys) {
  return request.shards > 0 ? BitsFor(static_cast<uint64_t>(request.shards))
                            : ShardBitsForKeys(keys);
}

int TargetDbOf(const PlanRequest& request, const Deployment& target, int db) {
  if (target.cluster()) return 0;
  if (request.merge_dbs) return request.target_db.value_or(0);
  return request.target_db.value_or(db);
}

namespace {

absl::StatusOr<std::vector<int>> SelectDbs(const PlanRequest& request,
                                           const std::map<int, uint64_t>& keyspace) {
  std::vector<int> dbs = request.dbs;
  if (dbs.empty() && request.source.db.has_value()) dbs.push_back(*request.source.db);
  if (dbs.empty()) {
    for (const auto& [db, keys] : keyspace) dbs.push_back(db);
  }
  for (int db : dbs) {
    if (db < 0) return absl::InvalidArgumentError(absl::StrCat("bad database number ", db));
  }
  std::sort(dbs.begin(), dbs.end());
  dbs.erase(std::unique(dbs.begin(), dbs.end()), dbs.end());
  return dbs;
}

// Where every key goes when all go to one database (unset: each to its own number). A cluster
// target has only db 0, so several source databases need an explicit merge.
absl::StatusOr<std::optional<int>> TargetDb(const PlanRequest& request,
                                            const std::optional<Deployment>& target,
                                            const std::vector<int>& non_empty_dbs) {
  if (target.has_value() && target->cluster()) {
    if (request.target_db.value_or(0) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("the target is a Redis Cluster, which has only db 0: it cannot be "
                       "written to db ",
                       *request.target_db));
    }
    if (non_empty_dbs.size() > 1 && !request.merge_dbs) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the target is a Redis Cluster, which has only db 0, and the source has keys in ",
          non_empty_dbs.size(), " databases (", absl::StrJoin(non_empty_dbs, ", "),
          "): copy one with --db N, or merge them all into db 0 with --merge-dbs (keys with "
          "the same name then overwrite each other)"));
    }
    return std::optional<int>(0);
  }
  if (request.merge_dbs) return std::optional<int>(request.target_db.value_or(0));
  return request.target_db;
}

// Refuses a target that is (part of) the source.
absl::Status CheckNotSame(const Deployment& source, const Deployment& target,
                          const std::vector<int>& dbs, const std::optional<int>& target_db) {
  const std::vector<std::string> source_ids = source.RunIds();
  for (const std::string& id : target.RunIds()) {
    if (std::find(source_ids.begin(), source_ids.end(), id) == source_ids.end()) continue;
    if (source.cluster() || target.cluster()) {
      return absl::InvalidArgumentError("the target is the source itself (same server)");
    }
    for (int db : dbs) {
      if (target_db.value_or(db) == db) {
        return absl::InvalidArgumentError(
            absl::StrCat("the target is the source itself (same server, database ", db, ")"));
      }
    }
  }
  return absl::OkStatus();
}

// Shards of a standalone source: per selected database, 2^bits cursor ranges.
absl::Status PlanStandalone(const PlanRequest& request, const Deployment& source,
                            const std::optional<Deployment>& target, Plan& plan) {
  FERRY_ASSIGN_OR_RETURN(std::vector<int> dbs, SelectDbs(request, source.seed.keyspace));
  std::vector<int> non_empty;
  for (int db : dbs) {
    auto it = source.seed.keyspace.find(db);
    plan.keys_per_db[db] = it == source.seed.keyspace.end() ? 0 : it->second;
    plan.estimated_keys += plan.keys_per_db[db];
    if (plan.keys_per_db[db] > 0) non_empty.push_back(db);
  }
  FERRY_ASSIGN_OR_RETURN(std::optional<int> target_db, TargetDb(request, target, non_empty));
  if (target.has_value()) FERRY_RETURN_IF_ERROR(CheckNotSame(source, *target, dbs, target_db));
  for (int db : non_empty) {
    const int bits = ShardBits(request, plan.keys_per_db[db]);
    for (uint64_t s = 0; s < (uint64_t{1} << bits); ++s) {
      ferry::v1::ShardRef& shard = plan.shards.emplace_back();
      shard.set_source_db(db);
      shard.set_target_db(target_db.value_or(db));
      shard.set_shard_bits(bits);
      shard.set_shard_index(s);
    }
  }
  return absl::OkStatus();
}

// Shards of a cluster source: per primary, its db 0 cut by its own key count, in the scheme
// of the node read: cursor ranges over all its slots, or slot ranges.
absl::Status PlanCluster(const PlanRequest& request, const Deployment& source,
                         const std::optional<Deployment>& target, Plan& plan) {
  const bool other_db =
      std::any_of(request.dbs.begin(), request.dbs.end(), [](int db) { return db != 0; });
  if (other_db || request.source.db.value_or(0) != 0) {
    return absl::InvalidArgumentError(
        "the source is a Redis Cluster, which has only db 0: select no other database");
  }
  FERRY_ASSIGN_OR_RETURN(std::optional<int> target_db, TargetDb(request, target, {0}));
  if (target.has_value()) FERRY_RETURN_IF_ERROR(CheckNotSame(source, *target, {0}, target_db));
  plan.keys_per_db[0] = source.Keys();
  plan.estimated_keys = source.Keys();
  for (const ClusterPrimary& p : source.primaries) {
    auto it = p.facts.keyspace.find(0);
    const uint64_t keys = it == p.facts.keyspace.end() ? 0 : it->second;
    if (keys == 0) continue;
    const int bits = ShardBits(request, keys);
    std::vector<redis::SlotRanges> pieces;
    if (p.scheme == redis::ScanScheme::kPerSlot) {
      for (const auto& range : SplitSlots(p.node.slots, 1 << bits)) pieces.push_back({range});
    } else {
      pieces.assign(uint64_t{1} << bits, p.node.slots);
    }
    const int piece_bits = BitsFor(pieces.size());
    for (size_t i = 0; i < pieces.size(); ++i) {
      ferry::v1::ShardRef& shard = plan.shards.emplace_back();
      shard.set_source_node(redis::NodeEndpoint(request.source, p.node).Address());
      shard.set_target_db(target_db.value_or(0));
      shard.set_shard_bits(piece_bits);
      shard.set_shard_index(i);
      shard.set_scan_scheme(wire::ScanSchemeToProto(p.scheme));
      wire::AddSlotRanges(pieces[i], shard.mutable_slots());
    }
  }
  return absl::OkStatus();
}

// Whatever INFO said, a database in which DBSIZE finds keys must have shards: a Redis 4.0 source
// once answered `INFO everything` with nothing and was "copied" as empty, exit 0.
absl::Status CheckNoKeysLeftOut(const PlanRequest& request, const Deployment& source,
                                const Plan& plan) {
  auto refuse = [](absl::string_view where, uint64_t keys) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the source's INFO reports no keys in ", where, ", but DBSIZE counts ", keys,
        " there: the plan would copy nothing from it, so the job does not start (is INFO "
        "filtered or rewritten by a proxy?)"));
  };
  if (source.cluster()) {
    for (const ClusterPrimary& p : source.primaries) {
      auto it = p.facts.keyspace.find(0);
      if (it != p.facts.keyspace.end() && it->second > 0) continue;
      FERRY_ASSIGN_OR_RETURN(uint64_t keys, SourceNodeDbSize(request, p.node));
      if (keys > 0) {
        return refuse(absl::StrCat("db 0 of node ", p.read_address), keys);
      }
    }
    return absl::OkStatus();
  }
  // The databases selected (none: all of them), each counted by DBSIZE.
  std::vector<int> dbs = request.dbs;
  if (dbs.empty() && request.source.db.has_value()) dbs.push_back(*request.source.db);
  using DbSizes = std::map<int, uint64_t>;
  FERRY_ASSIGN_OR_RETURN(DbSizes sizes, SourceDbSizes(request, dbs));
  for (const auto& [db, keys] : sizes) {
    auto planned = plan.keys_per_db.find(db);
    if (keys > 0 && (planned == plan.keys_per_db.end() || planned->second == 0)) {
      return refuse(absl::StrCat("db ", db), keys);
    }
  }
  return absl::OkStatus();
}

// Shards over the source (forward) or, with `target` read as a source, over the target.
absl::Status PlanAllShards(const PlanRequest& request, const Deployment& source,
                           const std::optional<Deployment>& target, Plan& plan) {
  FERRY_RETURN_IF_ERROR(source.cluster() ? PlanCluster(request, source, target, plan)
                                         : PlanStandalone(request, source, target, plan));
  return CheckNoKeysLeftOut(request, source, plan);
}

// A verify job's reverse shards: the target walked as a source, each of its databases checked
// against the one source database whose keys go there. Target databases that several source
// databases were merged into are left out with a warning: a key there cannot be said to be
// extra without looking in every one of them.
absl::Status PlanReverse(const PlanRequest& request, const Deployment& source,
                         const Deployment& target, Plan& plan) {
  PlanRequest reverse = request;
  reverse.source = request.target;
  reverse.target = request.source;
  reverse.source.db.reset();
  reverse.target.db.reset();
  reverse.source_name = "target";
  reverse.merge_dbs = false;
  reverse.read_from_replicas = false;
  reverse.dbs.clear();
  reverse.target_db.reset();
  const bool every_db = request.dbs.empty() && !request.source.db.has_value() &&
                        !request.target_db.has_value() && !request.merge_dbs && !source.cluster() &&
                        !target.cluster();
  if (!every_db) {
    std::map<int, std::vector<int>> sources_of;  // target db -> source dbs
    for (const auto& [db, keys] : plan.keys_per_db) {
      sources_of[TargetDbOf(request, target, db)].push_back(db);
    }
    for (const auto& [target_db, source_dbs] : sources_of) {
      if (source_dbs.size() > 1) {
        plan.warnings.push_back(absl::StrCat(
            "extra keys are not looked for in target db ", target_db, ": source databases ",
            absl::StrJoin(source_dbs, ", "), " were merged into it"));
        continue;
      }
      reverse.dbs.push_back(target_db);
      reverse.target_db = source_dbs.front();
    }
    if (reverse.dbs.empty()) return absl::OkStatus();
    if (reverse.dbs.size() > 1) reverse.target_db.reset();  // Each to its own number.
  }
  Plan extra;
  FERRY_RETURN_IF_ERROR(PlanAllShards(reverse, target, source, extra));
  for (ferry::v1::ShardRef& shard : extra.shards) {
    shard.set_reverse(true);
    // Tells the shard from the forward one of the same index in the job store.
    if (shard.source_node().empty()) shard.set_source_node(reverse.source.Address());
    plan.shards.push_back(std::move(shard));
  }
  plan.estimated_keys += extra.estimated_keys;
  return absl::OkStatus();
}

// A verify job: forward shards over the source, reverse ones over the target; both sides are
// only read, and probed only for reads.
void PlanVerify(const PlanRequest& request, Findings& findings, Plan& plan) {
  absl::StatusOr<Deployment> source = InspectSource(request, findings);
  if (!source.ok()) findings.Error(CheckOf(source.status()), source.status());
  if (!source.ok() || findings.Stop()) return;
  PlanRequest target_request = request;
  target_request.source = request.target;
  target_request.source.db = request.target_db;
  target_request.dbs.clear();
  target_request.source_name = "target";
  target_request.read_from_replicas = false;
  absl::StatusOr<Deployment> target = InspectSource(target_request, findings);
  if (!target.ok()) findings.Error(CheckOf(target.status()), target.status());
  if (!target.ok() || findings.Stop()) return;
  plan.source_run_id = source->seed.run_id;
  if (!findings.Ok(check::kDatabases, PlanAllShards(request, *source, *target, plan))) return;
  findings.Ok(check::kDatabases, PlanReverse(request, *source, *target, plan));
}

}  // namespace

std::map<int, uint64_t> ParseKeyspace(absl::string_view info) {
  // Lines like `db3:keys=120,expires=4,avg_ttl=0`.
  std::map<int, uint64_t> out;
  for (absl::string_view line : absl::StrSplit(info, '\n')) {
    if (!absl::ConsumePrefix(&line, "db")) continue;
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(line, ':');
    int db = 0;
    if (!absl::SimpleAtoi(kv.first, &db) || db < 0) continue;
    for (absl::string_view field : absl::StrSplit(kv.second, ',')) {
      uint64_t keys = 0;
      if (absl::ConsumePrefix(&field, "keys=") &&
          absl::SimpleAtoi(absl::StripTrailingAsciiWhitespace(field), &keys)) {
        out[db] = keys;
      }
    }
  }
  return out;
}

int ShardBitsForKeys(uint64_t keys) {
  constexpr uint64_t kKeysPerShard = 16384;
  int bits = 0;
  while (bits < 10 && (keys >> bits) >= 2 * kKeysPerShard) ++bits;
  return bits;
}

redis::SlotRanges SplitSlots(const redis::SlotRanges& ranges, int pieces) {
  int total = 0;
  for (const auto& [first, last] : ranges) total += last - first + 1;
  const int per = std::max(1, (total + std::max(pieces, 1) - 1) / std::max(pieces, 1));
  redis::SlotRanges out;
  for (const auto& [first, last] : ranges) {
    for (int start = first; start <= last; start += per) {
      out.emplace_back(start, std::min(last, start + per - 1));
    }
  }
  return out;
}

absl::Status PlanShards(const PlanRequest& request, const Deployment& source,
                        const std::optional<Deployment>& target, Plan& plan) {
  return PlanAllShards(request, source, target, plan);
}

absl::StatusOr<Plan> PlanCopy(const PlanRequest& request) {
  Findings findings(/*collect_all=*/false);
  Plan plan;
  if (request.verify) {
    PlanVerify(request, findings, plan);
  } else {
    CheckAndPlan(request, findings, plan);
  }
  FERRY_RETURN_IF_ERROR(findings.JobStatus());
  // The checks' warnings first, then the planner's own (PlanReverse's).
  std::vector<std::string> warnings = findings.JobWarnings();
  warnings.insert(warnings.end(), plan.warnings.begin(), plan.warnings.end());
  plan.warnings = std::move(warnings);
  return plan;
}

}  // namespace ferry::server
