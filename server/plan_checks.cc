// The checks of a copy job before its first write (planner_internal.h CheckAndPlan), run by the
// job's planning and by `ferry preflight` alike.

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/redis/slot.h"
#include "server/planner_internal.h"

namespace ferry::server {
namespace {

// A target this close to its maxmemory after the copy (estimated) is worth a warning: values
// may take more room on the target than on the source (other encodings, fragmentation).
constexpr double kTightFit = 0.9;

std::string Bytes(int64_t bytes) {
  return absl::StrFormat("%d bytes, %.1f MiB", bytes, static_cast<double>(bytes) / (1 << 20));
}

// The target's primaries (the server itself, standalone) as the agents will address them.
std::vector<TargetNodeFacts> TargetNodesOf(const PlanRequest& request, const Deployment& target) {
  std::vector<TargetNodeFacts> nodes;
  if (!target.cluster()) {
    nodes.push_back({request.target.Address(), target.seed.run_id, target.seed.evicted_keys});
  }
  for (const ClusterPrimary& p : target.primaries) {
    nodes.push_back({redis::NodeEndpoint(request.target, p.node).Address(), p.facts.run_id,
                     p.facts.evicted_keys});
  }
  return nodes;
}

// How a side was reached: address, TLS and whose AUTH (never the password).
void DescribeConnection(absl::string_view side, const redis::Endpoint& e, Findings& findings) {
  const std::string tls = !e.tls ? "without TLS"
                          : e.verify_peer
                              ? "over TLS, its certificate verified"
                              : "over TLS, its certificate not verified (--from/--to-insecure)";
  const std::string auth =
      e.iam.enabled        ? "IAM authentication"
      : e.password.empty() ? "no AUTH"
                           : absl::StrCat("AUTH as '", e.user.empty() ? "default" : e.user, "'");
  findings.Info(check::kConnect,
                absl::StrCat(side, ": reached ", e.Address(), " ", tls, ", ", auth));
}

// What a side is: engine and version, mode, keys, payload version (facts, no verdict).
void DescribeSide(absl::string_view side, const Deployment& d, Findings& findings) {
  const std::string version =
      d.seed.version.empty()
          ? absl::StrCat("version unknown (INFO refused: taken for ", d.Oldest().Describe(),
                         ", nothing newer is sent)")
          : absl::StrCat(d.Oldest().Describe(), " (redis_version ", d.seed.version, ")");
  std::string keys;
  if (d.cluster()) {
    std::vector<std::string> nodes;
    int slots = 0;
    for (const ClusterPrimary& p : d.primaries) {
      nodes.push_back(absl::StrCat(p.node.host, ":", p.node.port));
      for (const auto& [first, last] : p.node.slots) slots += last - first + 1;
    }
    keys = absl::StrCat("Redis Cluster of ", d.primaries.size(), " primaries (",
                        absl::StrJoin(nodes, ", "), ") serving ", slots, " of ",
                        redis::kClusterSlots, " slots, ", d.Keys(), " keys");
  } else {
    std::vector<std::string> dbs;
    for (const auto& [db, n] : d.seed.keyspace) dbs.push_back(absl::StrCat("db ", db, ": ", n));
    keys = absl::StrCat("standalone, ", d.Keys(), " keys",
                        dbs.empty() ? "" : absl::StrCat(" (", absl::StrJoin(dbs, ", "), ")"));
  }
  std::string payload;
  if (d.PayloadVersion() > 0) {
    payload = absl::StrCat(", DUMP payload version ", d.PayloadVersion());
  }
  findings.Info(check::kServer, absl::StrCat(side, ": ", version, ", ", keys, payload));
}

// Slots no primary serves: on the source nothing is read there; on the target a write there
// fails with CLUSTERDOWN (each such key fails: the job starts all the same).
void CheckSlotCoverage(absl::string_view side, const Deployment& d, bool target,
                       Findings& findings) {
  if (!d.cluster()) return;
  int slots = 0;
  for (const ClusterPrimary& p : d.primaries) {
    for (const auto& [first, last] : p.node.slots) slots += last - first + 1;
  }
  if (slots >= redis::kClusterSlots) return;
  const std::string covered =
      absl::StrCat("the ", side, " cluster serves ", slots, " of ", redis::kClusterSlots, " slots");
  if (!target) {
    findings.Warning(check::kCluster,
                     absl::StrCat(covered, ": keys of the others, if any, are not read"));
    return;
  }
  findings.ErrorJobStartsWith(
      check::kCluster,
      absl::FailedPreconditionError(
          absl::StrCat(covered,
                       ": keys that hash to the others fail with CLUSTERDOWN; assign every slot "
                       "first (CLUSTER ADDSLOTS, or redis-cli --cluster fix)")));
}

// One memory fit to check: the whole target (standalone), or one primary of a cluster target
// with the share of the source's dataset its slots will hold.
struct Fit {
  std::string dataset_phrase;  // "the source's dataset", "the share of ... that ... will hold"
  std::string target_phrase;   // "the target's", "its"
  int64_t dataset = 0;
  int64_t used = 0;
  int64_t maxmemory = 0;
  std::string policy;
};

// A cluster target's primaries and the share of the source's dataset each will hold: a source
// primary's dataset spreads evenly over the slots it serves (a standalone source's over all
// 16384 slots), as key hashing makes it on average. Empty when some size is unknown.
std::vector<Fit> PrimaryFits(const Deployment& source, const Deployment& target) {
  struct Density {
    redis::SlotSet slots;
    double bytes_per_slot;
  };
  std::vector<Density> densities;
  if (!source.cluster()) {
    if (source.seed.used_memory_dataset < 0) return {};
    redis::SlotSet all;
    all.AddRange(0, redis::kClusterSlots - 1);
    densities.push_back(
        {all, static_cast<double>(source.seed.used_memory_dataset) / redis::kClusterSlots});
  } else {
    for (const ClusterPrimary& p : source.primaries) {
      redis::SlotSet slots;
      for (const auto& [first, last] : p.node.slots) slots.AddRange(first, last);
      if (p.facts.used_memory_dataset < 0) return {};
      if (slots.empty()) continue;
      densities.push_back({slots, static_cast<double>(p.facts.used_memory_dataset) / slots.size()});
    }
  }
  std::vector<Fit> fits;
  for (const ClusterPrimary& p : target.primaries) {
    redis::SlotSet slots;
    for (const auto& [first, last] : p.node.slots) slots.AddRange(first, last);
    double share = 0;
    for (const Density& d : densities) {
      redis::SlotSet common = slots;
      common &= d.slots;
      share += d.bytes_per_slot * common.size();
    }
    if (p.facts.maxmemory < 0 || p.facts.used_memory < 0) return {};
    fits.push_back(
        {absl::StrCat("the share of the source's dataset that target primary ", p.node.host, ":",
                      p.node.port, " will hold for its ", slots.size(), " slots"),
         "its", static_cast<int64_t>(share), p.facts.used_memory, p.facts.maxmemory,
         p.facts.maxmemory_policy});
  }
  return fits;
}

// The fit of a cluster target that fills up first (the primary with the least room left after
// its share; one without maxmemory never fills up), or of a standalone target. Unset when some
// size is unknown.
std::optional<Fit> TightestFit(const Deployment& source, const Deployment& target) {
  if (!target.cluster()) {
    if (source.UsedMemoryDataset() < 0 || target.MaxMemory() < 0) return std::nullopt;
    return Fit{"the source's dataset",     "the target's",
               source.UsedMemoryDataset(), std::max<int64_t>(target.UsedMemory(), 0),
               target.MaxMemory(),         target.MaxMemoryPolicy()};
  }
  std::optional<Fit> tightest;
  for (Fit& fit : PrimaryFits(source, target)) {
    const auto room = [](const Fit& f) {
      return f.maxmemory == 0 ? INT64_MAX : f.maxmemory - f.dataset - f.used;
    };
    if (!tightest.has_value() || room(fit) < room(*tightest)) tightest = std::move(fit);
  }
  return tightest;
}

// Memory fit: the source's dataset plus what the target already uses against the target's
// maxmemory (cluster: each primary's share and use against its own maxmemory). Too small and
// evicting: the copy's keys (or the target's own) would be evicted while the job ends "done":
// refused. Too small with noeviction: writes fail with OOM part way (the job starts and stops
// there).
void CheckTargetCapacity(const Deployment& source, const Deployment& target, Findings& findings) {
  const std::optional<Fit> tightest = TightestFit(source, target);
  if (!tightest.has_value()) {
    findings.Warning(check::kMemory, absl::StrCat("memory fit not checked: ",
                                                  source.UsedMemoryDataset() < 0
                                                      ? "the source's used_memory_dataset"
                                                      : "the target's maxmemory",
                                                  " is unknown (INFO refused to that user)"));
    return;
  }
  const Fit& fit = *tightest;
  if (fit.maxmemory == 0) {
    findings.Info(check::kMemory, absl::StrCat("the target has no maxmemory: the copy needs about ",
                                               Bytes(source.UsedMemoryDataset() +
                                                     std::max<int64_t>(target.UsedMemory(), 0)),
                                               " of the target hosts' memory"));
    return;
  }
  const int64_t need = fit.dataset + fit.used;
  const std::string sizes =
      absl::StrCat(fit.dataset_phrase, " (", Bytes(fit.dataset), ") plus what ",
                   target.cluster() ? "it" : "the target", " already uses (", Bytes(fit.used),
                   ") is ", need > fit.maxmemory ? "more than" : "within 10% of", " ",
                   fit.target_phrase, " maxmemory (", Bytes(fit.maxmemory), ")");
  const std::string policy = fit.policy.empty() ? "unknown" : fit.policy;
  if (need <= fit.maxmemory) {
    if (static_cast<double>(need) > kTightFit * static_cast<double>(fit.maxmemory)) {
      findings.Warning(check::kMemory,
                       absl::StrCat(sizes,
                                    ": values may take more room on the target; leave "
                                    "headroom"));
    } else {
      findings.Info(
          check::kMemory,
          absl::StrCat("fits: ", fit.dataset_phrase, " (", Bytes(fit.dataset), ") plus ",
                       fit.target_phrase, " use (", Bytes(fit.used), ") within ", fit.target_phrase,
                       " maxmemory (", Bytes(fit.maxmemory), "), maxmemory-policy ", policy));
    }
    return;
  }
  if (fit.policy.empty() || fit.policy == "noeviction") {
    findings.ErrorJobStartsWith(
        check::kMemory,
        absl::FailedPreconditionError(absl::StrCat(
            sizes, ": the target may run out of memory, and with maxmemory-policy ", policy,
            " it then refuses writes with OOM, so the copy would stop part way; raise the "
            "target's maxmemory (on ElastiCache: a larger node type",
            target.cluster() ? ", or more shards" : "", ") first")));
    return;
  }
  findings.Error(check::kMemory,
                 absl::FailedPreconditionError(absl::StrCat(
                     sizes, " and ", fit.target_phrase, " maxmemory-policy is ", policy,
                     ": it would evict keys silently, copied ones included; raise the target's "
                     "maxmemory, or set maxmemory-policy noeviction (a full target then stops "
                     "the copy with OOM)")));
}

// How values will be written, said before the copy: DUMP/RESTORE, or type by type and why. An
// error when they must go type by type and the target user may not write ferry's temporary keys.
absl::Status CheckCopyPath(const PlanRequest& request, const Deployment& source,
                           const Deployment& target, Findings& findings) {
  const redis::Capabilities from = source.Oldest();
  const redis::Capabilities to = target.Oldest();
  // The agents probe the target's own payload version; the table's is close enough to warn.
  const int source_payload = source.PayloadVersion();
  const int target_payload = to.TablePayloadVersion();
  std::string why;
  if (request.typed_only) {
    why = "--copy-path typed";
  } else if (!target.restore_refusal.empty()) {
    why = absl::StrCat("the target refuses RESTORE (", target.restore_refusal, ")");
  } else if (source_payload > 0 &&
             !redis::Capabilities::ReadsPayload(to.engine(), target_payload, source_payload)) {
    why = absl::StrCat("the source (", from.Describe(), ") writes DUMP payload version ",
                       source_payload, ", which the target (", to.Describe(), ", version ",
                       target_payload, ") cannot read");
  }
  if (from.streams() && !to.streams()) {
    findings.Warning(check::kCopyPath, absl::StrCat("the target (", to.Describe(),
                                                    ") has no streams: stream keys will fail, "
                                                    "each named"));
  }
  if (from.hash_field_ttl() && !to.hash_field_ttl()) {
    findings.Warning(check::kCopyPath,
                     absl::StrCat("the target (", to.Describe(), ") has no hash field TTLs: ",
                                  request.drop_field_ttls
                                      ? "hashes with field TTLs are copied without them "
                                        "(--drop-field-ttls)"
                                      : "hashes with field TTLs, if any, will fail, each named "
                                        "(--drop-field-ttls copies them without)"));
  }
  if (why.empty()) {
    if (!target.temp_key_refusal.empty()) {
      findings.Warning(check::kCopyPath,
                       absl::StrCat("keys above --big-key-bytes are built in temporary keys "
                                    "ferry:tmp:*, which the target user may not write (",
                                    target.temp_key_refusal, "): such keys will fail"));
    }
    findings.Info(
        check::kCopyPath,
        absl::StrCat("values are copied with DUMP/RESTORE",
                     source_payload > 0
                         ? absl::StrCat(" (payload version ", source_payload, "; the target, ",
                                        to.Describe(), ", reads up to ", target_payload, ")")
                         : " (no key sampled: the payload version is learned by the agents)",
                     target.writes_unchecked ? "; RESTORE permission not checked" : "",
                     "; keys above --big-key-bytes are copied type by type in chunks"));
    return absl::OkStatus();
  }
  if (!target.temp_key_refusal.empty()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "keys must be copied type by type (", why,
        "), which builds each value in a temporary key ferry:tmp:* and renames it, but the target "
        "user may not write those keys (",
        target.temp_key_refusal, "): allow the pattern ~ferry:tmp:* for that user"));
  }
  findings.Warning(check::kCopyPath, absl::StrCat("keys are copied type by type (plain commands "
                                                  "per type, slower than DUMP/RESTORE): ",
                                                  why));
  return absl::OkStatus();
}

void AddTargetWarnings(const Deployment& target, Findings& findings) {
  if (const uint64_t keys = target.Keys(); keys > 0) {
    findings.Warning(check::kTargetKeys, absl::StrCat("the target is not empty (", keys,
                                                      " keys); existing keys may be overwritten"));
  }
}

// Both sides inspected; `target` unset for a dry run or when it could not be inspected.
void CheckSides(const PlanRequest& request, const Deployment& source,
                const std::optional<Deployment>& target, Findings& findings, Plan& plan) {
  plan.source_run_id = source.seed.run_id;
  if (request.read_from_replicas && !source.cluster()) {
    findings.Warning(check::kCluster,
                     "--read-from replica applies to cluster sources: the source is read");
  }
  CheckSlotCoverage(request.source_name, source, /*target=*/false, findings);
  if (target.has_value()) CheckSlotCoverage("target", *target, /*target=*/true, findings);
  if (!findings.Ok(check::kDatabases, PlanShards(request, source, target, plan)) &&
      findings.Stop()) {
    return;
  }
  if (!target.has_value()) return;
  CheckTargetCapacity(source, *target, findings);
  if (findings.Stop()) return;
  AddTargetWarnings(*target, findings);
  if (!findings.Ok(check::kCopyPath, CheckCopyPath(request, source, *target, findings)) &&
      findings.Stop()) {
    return;
  }
  plan.target_nodes = TargetNodesOf(request, *target);
  if (request.live) AddLiveShards(request, source, *target, plan, findings);
}

}  // namespace

void CheckAndPlan(const PlanRequest& request, Findings& findings, Plan& plan) {
  absl::StatusOr<Deployment> source = InspectSource(request, findings);
  if (!source.ok()) findings.Error(CheckOf(source.status()), source.status());
  if (findings.Stop()) return;
  std::optional<Deployment> target;
  if (!request.dry_run) {
    absl::StatusOr<Deployment> inspected =
        InspectTarget(request, source.ok() ? source->probe_key : "", findings);
    if (inspected.ok()) {
      target = *std::move(inspected);
    } else {
      findings.Error(CheckOf(inspected.status()), inspected.status());
    }
    if (findings.Stop()) return;
  }
  if (source.ok()) {
    DescribeConnection(request.source_name, request.source, findings);
    DescribeSide(request.source_name, *source, findings);
  }
  if (target.has_value()) {
    DescribeConnection("target", request.target, findings);
    DescribeSide("target", *target, findings);
    if (!target->write_check.empty()) findings.Info(check::kPermissions, target->write_check);
  }
  if (!source.ok()) return;
  // A target that could not be inspected leaves out the checks that need it; its error is
  // already there.
  CheckSides(request, *source, target, findings, plan);
}

}  // namespace ferry::server
