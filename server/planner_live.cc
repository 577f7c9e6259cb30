// A live job's plan beyond the copy's (planner_internal.h AddLiveShards): watches, reverse shards
// for rescans, and the checks that the source publishes keyspace notifications and that its user
// may subscribe to them.

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"
#include "common/redis/cluster.h"
#include "common/redis/connection.h"
#include "common/redis/errors.h"
#include "common/redis/slot.h"
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

// notify-keyspace-events as CONFIG GET read it on `where`: an error when it lacks a class, a
// fact when it has them all.
void CheckFlags(const std::string& flags, const std::string& where, Findings& findings) {
  const std::string missing = MissingClasses(flags);
  if (missing.empty()) {
    findings.Info(check::kNotifications,
                  absl::StrCat(where, ": notify-keyspace-events is '", flags,
                               "' (read with CONFIG GET): the watchers see every write"));
    return;
  }
  findings.Error(check::kNotifications,
                 absl::FailedPreconditionError(absl::StrCat(
                     "live sync needs keyspace notifications on ", where,
                     ": notify-keyspace-events is '", flags, "', which lacks '", missing,
                     "'; run CONFIG SET notify-keyspace-events KA (on ElastiCache: set "
                     "notify-keyspace-events = KA in the cluster's parameter group)")));
}

// How long a subscription's confirmation, and the probe key's events, may take.
constexpr absl::Duration kEventWait = absl::Seconds(2);
// The probe key's TTL: it is gone soon even if preflight dies on the way.
constexpr absl::string_view kProbeTtlMs = "2000";

std::string KeyspaceChannel(int db) { return absl::StrCat("__keyspace@", db, "__:"); }

// `key` as a PSUBSCRIBE pattern that matches it alone.
std::string GlobEscaped(absl::string_view key) {
  std::string out;
  for (char c : key) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

// Subscribes `subscriber` to `patterns` and waits for every confirmation. A refusal is the
// watcher's (agent/live_watcher.cc) error, said before the job starts.
absl::Status Subscribe(redis::Connection& subscriber, const std::string& address,
                       const std::vector<std::string>& patterns) {
  std::vector<absl::string_view> argv = {"PSUBSCRIBE"};
  argv.insert(argv.end(), patterns.begin(), patterns.end());
  subscriber.Append(absl::MakeConstSpan(argv));
  FERRY_RETURN_IF_ERROR(subscriber.Flush());
  const absl::Time deadline = absl::Now() + kEventWait;
  for (size_t confirmed = 0; confirmed < patterns.size();) {
    FERRY_ASSIGN_OR_RETURN(std::optional<redis::Reply> reply,
                           subscriber.ReadReplyWithin(deadline - absl::Now()));
    if (!reply.has_value()) {
      return absl::DeadlineExceededError(absl::StrCat("PSUBSCRIBE on source node ", address,
                                                      " was not confirmed within ",
                                                      absl::FormatDuration(kEventWait)));
    }
    if (reply->is_error()) {
      absl::Status status = redis::StatusFromReplyError(reply->str());
      if (status.code() == absl::StatusCode::kPermissionDenied) {
        return absl::PermissionDeniedError(
            absl::StrCat("the source user may not follow keyspace notifications on ", address,
                         " (PSUBSCRIBE: ", status.message(),
                         "): it needs +psubscribe and the channel permission &* (allchannels)"));
      }
      return Annotate(status, absl::StrCat("PSUBSCRIBE on source node ", address));
    }
    if (reply->is_array() && reply->size() > 0 && reply->element(0).str() == "psubscribe") {
      ++confirmed;
    }
  }
  return absl::OkStatus();
}

// CONFIG is refused: writes request.probe_key (absent, PX 2000) in `db`, lets it expire, and
// waits for its set, expire and expired events on `subscriber` (already subscribed to the key's
// channel). An error when they do not all come.
void ProbeNotifications(const PlanRequest& request, redis::Connection& conn,
                        redis::Connection& subscriber, const std::string& address, int db,
                        Findings& findings) {
  const std::string key = request.probe_key;
  const std::string channel = KeyspaceChannel(db) + key;
  const std::string shown = absl::StrCat("'", absl::CHexEscape(key), "'");
  absl::StatusOr<redis::Reply> set = [&]() -> absl::StatusOr<redis::Reply> {
    FERRY_RETURN_IF_ERROR(conn.Select(db));
    return conn.Command({"SET", key, "ferry-preflight", "NX", "PX", kProbeTtlMs});
  }();
  if (!set.ok()) {
    findings.Warning(
        check::kNotifications,
        absl::StrCat("source node ", address, ": the probe key ", shown, " could not be written (",
                     set.status().message(), "): keyspace notifications not checked"));
    return;
  }
  if (set->is_nil()) {
    findings.Warning(check::kNotifications,
                     absl::StrCat("source node ", address, ": the probe key ", shown,
                                  " exists there, so it was not written (give a name no key "
                                  "has): keyspace notifications not checked"));
    return;
  }
  // Expired keys publish "expired" when next touched: a 1 ms TTL, then EXISTS until it is gone.
  (void)conn.Command({"PEXPIRE", key, "1"});
  std::set<std::string> seen;
  const absl::Time deadline = absl::Now() + kEventWait;
  bool gone = false;
  while (seen.size() < 3 && absl::Now() < deadline) {
    if (!gone) {
      absl::SleepFor(absl::Milliseconds(2));
      absl::StatusOr<redis::Reply> exists = conn.Command({"EXISTS", key});
      gone = exists.ok() && exists->integer() == 0;
    }
    absl::StatusOr<std::optional<redis::Reply>> message =
        subscriber.ReadReplyWithin(gone ? deadline - absl::Now() : absl::Milliseconds(5));
    if (!message.ok()) break;
    if (!message->has_value()) continue;
    const redis::Reply& m = **message;
    if (m.is_array() && m.size() == 4 && m.element(2).str() == channel) {
      seen.insert(std::string(m.element(3).str()));
    }
  }
  std::vector<std::string> missing;
  for (const char* event : {"set", "expire", "expired"}) {
    if (seen.count(event) == 0) missing.push_back(event);
  }
  const std::string how = absl::StrCat(
      "CONFIG is refused (as on ElastiCache), so preflight subscribed (PSUBSCRIBE ", channel,
      ") and wrote the probe key ", shown, " with PX ", kProbeTtlMs, ", then let it expire");
  if (missing.empty()) {
    findings.Info(check::kNotifications,
                  absl::StrCat("source node ", address, ": ", how,
                               ": its set, expire and expired events arrived"));
    return;
  }
  findings.Error(
      check::kNotifications,
      absl::FailedPreconditionError(absl::StrCat(
          "live sync needs keyspace notifications on source node ", address, ": ", how,
          ", and within ", absl::FormatDuration(kEventWait), " no ", absl::StrJoin(missing, ", "),
          " event arrived: notify-keyspace-events must include K and A (on "
          "ElastiCache: set notify-keyspace-events = KA in the cluster's parameter "
          "group)")));
}

// One source primary: its notifications (an error when CONFIG shows they are off or too
// narrow; when CONFIG is refused, a warning naming the ElastiCache parameter group, or the probe
// key's events with `probe`), and that the source user may PSUBSCRIBE to them in `dbs`.
void CheckNotifications(const PlanRequest& request, const redis::Endpoint& node,
                        const std::vector<int>& dbs, bool probe, Findings& findings) {
  redis::Endpoint endpoint = node;
  endpoint.db.reset();
  const std::string address = node.Address();
  const std::string where = absl::StrCat("source node ", address);
  absl::StatusOr<redis::Connection> conn = redis::Connection::Open(endpoint, request.connect);
  absl::StatusOr<redis::Connection> subscriber =
      conn.ok() ? redis::Connection::Open(endpoint, request.connect) : conn.status();
  if (!subscriber.ok()) {
    findings.Error(check::kConnect, Annotate(subscriber.status(), where));
    return;
  }
  // The watcher's patterns: the channel's suffix is the key, so MATCH narrows them exactly.
  std::vector<std::string> patterns;
  for (int db : dbs) {
    patterns.push_back(KeyspaceChannel(db) + (request.match.empty() ? "*" : request.match));
  }
  absl::StatusOr<redis::Reply> config = conn->Command({"CONFIG", "GET", "notify-keyspace-events"});
  if (!config.ok() && conn->broken()) {
    findings.Error(check::kConnect, Annotate(config.status(), where));
    return;
  }
  const bool config_refused = !config.ok() || !config->is_array() || config->size() < 2;
  if (!config_refused) CheckFlags(std::string(config->element(1).str()), where, findings);
  if (config_refused && probe) {
    patterns.push_back(KeyspaceChannel(dbs.front()) + GlobEscaped(request.probe_key));
  }
  if (absl::Status subscribed = Subscribe(*subscriber, address, patterns); !subscribed.ok()) {
    findings.Error(CheckOf(subscribed), subscribed);
    return;
  }
  if (!config_refused) return;
  if (probe) {
    ProbeNotifications(request, *conn, *subscriber, address, dbs.front(), findings);
    return;
  }
  findings.Warning(
      check::kNotifications,
      absl::StrCat("live sync: cannot read notify-keyspace-events on ", where,
                   " (CONFIG is refused, as on ElastiCache): it must include K and A, or the "
                   "watchers see no writes; on ElastiCache set notify-keyspace-events = KA in "
                   "the cluster's parameter group",
                   request.no_writes
                       ? " (not checked: give --probe-key NAME to check it by writing NAME with "
                         "a short TTL and waiting for its event)"
                       : ""));
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
  const auto add = [&](const std::string& node, int bits, uint64_t index, redis::ScanScheme scheme,
                       const redis::SlotRanges& slots) {
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

void AddLiveShards(const PlanRequest& request, const Deployment& source, const Deployment& target,
                   Plan& plan, Findings& findings) {
  // An empty source is followed all the same: in the URI's database (or db 0).
  if (plan.keys_per_db.empty()) plan.keys_per_db[request.source.db.value_or(0)] = 0;
  std::vector<int> dbs;
  for (const auto& [db, keys] : plan.keys_per_db) dbs.push_back(db);
  // Watches, after the notifications were checked on each primary.
  if (source.cluster()) {
    const int probe_slot = redis::KeySlot(request.probe_key);
    for (const ClusterPrimary& p : source.primaries) {
      const redis::Endpoint node = redis::NodeEndpoint(request.source, p.node);
      // The probe key is written on the primary that serves its slot only.
      bool probe = false;
      for (const auto& [first, last] : p.node.slots) {
        probe = probe || (!request.probe_key.empty() && first <= probe_slot && probe_slot <= last);
      }
      CheckNotifications(request, node, {0}, probe, findings);
      if (findings.Stop()) return;
      ferry::v1::ShardRef shard = WatchShard(0, TargetDbOf(request, target, 0));
      shard.set_source_node(node.Address());
      shard.set_scan_scheme(wire::ScanSchemeToProto(p.scheme));
      wire::AddSlotRanges(p.node.slots, shard.mutable_slots());
      plan.shards.push_back(std::move(shard));
    }
  } else {
    CheckNotifications(request, request.source, dbs, !request.probe_key.empty(), findings);
    if (findings.Stop()) return;
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
      findings.Warning(
          check::kDatabases,
          absl::StrCat("live sync: a rescan after a gap in the notifications does not delete "
                       "keys from target db ",
                       target_db, " (source databases ", absl::StrJoin(source_dbs, ", "),
                       " are merged into it): a key deleted on the source during a gap may stay "
                       "there"));
      continue;
    }
    const int db = source_dbs.front();
    AddReverseShards(request, target, target_db, db, plan.keys_per_db.at(db), plan);
  }
}

}  // namespace ferry::server
