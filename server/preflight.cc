#include "server/preflight.h"

#include <algorithm>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/base/status_macros.h"
#include "common/redis/dump_payload.h"
#include "common/redis/errors.h"
#include "common/redis/info.h"

namespace ferry::server {
namespace {

using redis::Connection;
using redis::Reply;

constexpr int kProbeDbLimit = 16;

// Databases and their sizes without INFO (restricted users): SELECT + DBSIZE until SELECT fails.
absl::StatusOr<std::map<int, uint64_t>> KeyspaceByProbing(Connection& conn) {
  std::map<int, uint64_t> out;
  for (int db = 0; db < kProbeDbLimit; ++db) {
    if (!conn.Select(db).ok()) break;
    FERRY_ASSIGN_OR_RETURN(Reply size, conn.Command({"DBSIZE"}));
    if (size.integer() > 0) out[db] = static_cast<uint64_t>(size.integer());
  }
  FERRY_RETURN_IF_ERROR(conn.Select(0));
  return out;
}

absl::StatusOr<ServerFacts> ReadFacts(Connection& conn) {
  ServerFacts facts;
  // Plain INFO (the default sections: server, memory, stats, cluster, keyspace...) is answered
  // alike by every version; `INFO everything` is empty on Redis < 6 and made a 4.0 source look
  // empty (PlanCopy also cross-checks the plan with DBSIZE).
  FERRY_ASSIGN_OR_RETURN(std::optional<std::string> info, redis::ReadInfo(conn));
  if (!info.has_value()) {
    // ElastiCache-style read-only users may lack INFO: ask CLUSTER MYID whether this is a
    // cluster node (a user allowed neither is taken for a standalone server's), count keys the
    // slow way.
    absl::StatusOr<bool> cluster = redis::DetectClusterMode(conn);
    if (!cluster.ok() && cluster.status().code() != absl::StatusCode::kPermissionDenied) {
      return cluster.status();
    }
    facts.cluster = cluster.ok() && *cluster;
    if (facts.cluster) {
      FERRY_ASSIGN_OR_RETURN(Reply size, conn.Command({"DBSIZE"}));
      if (size.integer() > 0) facts.keyspace[0] = static_cast<uint64_t>(size.integer());
    } else {
      FERRY_ASSIGN_OR_RETURN(facts.keyspace, KeyspaceByProbing(conn));
    }
    return facts;
  }
  const absl::string_view text = *info;
  facts.run_id = redis::InfoField(text, "run_id");
  facts.version = redis::InfoField(text, "redis_version");
  facts.caps = redis::Capabilities::FromInfo(text);
  facts.cluster = redis::InfoField(text, "cluster_enabled") == "1";
  facts.scheme = redis::ScanSchemeOf(text, facts.cluster);
  (void)absl::SimpleAtoi(redis::InfoField(text, "used_memory_dataset"), &facts.used_memory_dataset);
  (void)absl::SimpleAtoi(redis::InfoField(text, "maxmemory"), &facts.maxmemory);
  facts.maxmemory_policy = redis::InfoField(text, "maxmemory_policy");
  (void)absl::SimpleAtoi(redis::InfoField(text, "evicted_keys"), &facts.evicted_keys);
  facts.keyspace = ParseKeyspace(text);
  return facts;
}

// The commands the permission probes check; named in every refusal.
constexpr absl::string_view kNeeded =
    "ferry needs SCAN, PTTL, DUMP and MGET on the source and SET, DEL (GET and DUMP with "
    "--on-conflict skip or fail), RESTORE or else each type's write commands and RENAME on the "
    "target";
// The key probes name when no key to copy was found. ACL checks a command before its keys, so
// a refusal of this key's pattern still says that the command is allowed.
constexpr absl::string_view kFallbackKey = "ferry:preflight";
// SCAN calls (COUNT 100) spent looking for a key to probe with.
constexpr int kSampleScans = 10;

// The key a probe names: one the copy will touch when `sampled`.
struct ProbeKey {
  std::string name = std::string(kFallbackKey);
  bool sampled = false;
  int payload_version = -1;  // Of its DUMP, when sampled and dumped.
};

// The first key SCAN returns in the selected database (with the job's MATCH) that is not a big
// key (MEMORY USAGE at most `max_bytes`: probes DUMP it), so that a user limited to key patterns
// (`~app:*`) is probed on a key it must copy.
absl::StatusOr<ProbeKey> SampleKey(Connection& conn, absl::string_view match, uint64_t max_bytes) {
  std::string cursor = "0";
  for (int round = 0; round < kSampleScans; ++round) {
    std::vector<absl::string_view> argv = {"SCAN", cursor, "COUNT", "100"};
    if (!match.empty()) argv.insert(argv.end(), {"MATCH", match});
    FERRY_ASSIGN_OR_RETURN(Reply reply, conn.Command(absl::MakeConstSpan(argv)));
    if (!reply.is_array() || reply.size() != 2) break;
    const redis::ReplyView keys = reply.element(1);
    for (size_t i = 0; i < keys.size(); ++i) {
      absl::StatusOr<Reply> usage = conn.Command({"MEMORY", "USAGE", keys.element(i).str()});
      if (!usage.ok() && conn.broken()) return usage.status();
      // Refused (or gone): the key's size is unknown; it is the probe all the same.
      if (!usage.ok() || usage->is_nil() || usage->integer() < 0 ||
          static_cast<uint64_t>(usage->integer()) <= max_bytes) {
        return ProbeKey{std::string(keys.element(i).str()), true};
      }
    }
    cursor = std::string(reply.element(0).str());
    if (cursor == "0") break;
  }
  return ProbeKey();
}

// Sends `argv` and accepts any reply but a permission problem, which it explains. A MOVED
// reply (the probe key's slot lives elsewhere) comes after the ACL check, so it passes. `key`
// is the key in argv, if any.
// `reply`, when given, receives the reply of an allowed command.
absl::Status ProbeCommand(Connection& conn, absl::string_view side, const ProbeKey* key,
                          std::initializer_list<absl::string_view> argv,
                          Reply* reply_out = nullptr) {
  absl::StatusOr<Reply> reply = conn.Command(argv);
  if (reply.ok()) {
    if (reply_out != nullptr) *reply_out = *std::move(reply);
    return absl::OkStatus();
  }
  const absl::Status& s = reply.status();
  const std::string command(*argv.begin());
  switch (s.code()) {
    case absl::StatusCode::kPermissionDenied:
      if (key != nullptr && redis::ClassifyRefusal(s.message()) == redis::Refusal::kKey) {
        if (!key->sampled) return absl::OkStatus();  // Not a key the copy touches.
        return absl::PermissionDeniedError(absl::StrCat(
            "the ", side, " user may not access key '", absl::CHexEscape(key->name), "' (", command,
            ": ", s.message(), "): its ACL key patterns must cover every key copied"));
      }
      return absl::PermissionDeniedError(absl::StrCat("the ", side, " does not allow ", command,
                                                      " (", s.message(), "); ", kNeeded));
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kResourceExhausted:
      return Annotate(s, side);
    default:
      return absl::OkStatus();  // Bad payload, wrong args, MOVED: the command is allowed.
  }
}

// SCAN, then PTTL, DUMP and (standalone sources read strings with it) MGET on a key the copy
// reads. Returns that key.
absl::StatusOr<ProbeKey> ProbeReads(const PlanRequest& request, Connection& conn,
                                    absl::string_view side, bool mget) {
  FERRY_RETURN_IF_ERROR(ProbeCommand(conn, side, nullptr, {"SCAN", "0", "COUNT", "1"}));
  absl::StatusOr<ProbeKey> key = SampleKey(conn, request.match, request.big_key_bytes);
  if (!key.ok()) return Annotate(key.status(), side);
  FERRY_RETURN_IF_ERROR(ProbeCommand(conn, side, &*key, {"PTTL", key->name}));
  Reply dump;
  FERRY_RETURN_IF_ERROR(ProbeCommand(conn, side, &*key, {"DUMP", key->name}, &dump));
  // What the target will be asked to read: this source's payload version.
  if (key->sampled && !dump.is_nil() && !dump.is_error()) {
    key->payload_version = redis::PayloadVersion(dump.str()).value_or(-1);
  }
  if (mget) FERRY_RETURN_IF_ERROR(ProbeCommand(conn, side, &*key, {"MGET", key->name}));
  return key;
}

// Selects the first database the copy reads, so that SampleKey finds one of its keys.
void SelectCopiedDb(const PlanRequest& request, const ServerFacts& facts, Connection& conn) {
  std::optional<int> db = request.source.db;
  if (!db.has_value() && !request.dbs.empty()) db = request.dbs.front();
  if (!db.has_value() && !facts.keyspace.empty()) db = facts.keyspace.begin()->first;
  // A database that does not exist is the planner's to report.
  if (db.has_value()) (void)conn.Select(*db);
}

// The target's commands as the copy sends them (RESTORE, SET, then DEL or GET and DUMP), each in
// a form the server refuses after its ACL check or one that changes nothing: `probe_key` (a
// source key, empty for none) is never written. A refused RESTORE is no error (keys are then
// copied type by type): its refusal goes to target.restore_refusal; so does a refusal of
// ferry's temporary keys to target.temp_key_refusal.
absl::Status ProbeWrites(const PlanRequest& request, Connection& conn, absl::string_view probe_key,
                         Deployment& target) {
  ProbeKey key;
  if (!probe_key.empty()) key = ProbeKey{std::string(probe_key), true};
  // An invalid payload: "payload version or checksum are wrong" (or BUSYKEY) when allowed.
  if (absl::Status restore =
          ProbeCommand(conn, "target", &key, {"RESTORE", key.name, "0", "ferry-probe"});
      !restore.ok()) {
    if (restore.code() != absl::StatusCode::kPermissionDenied ||
        absl::StrContains(restore.message(), "may not access key")) {
      return restore;
    }
    // The server's own words, without the list of everything ferry needs.
    absl::StatusOr<Reply> again = conn.Command({"RESTORE", key.name, "0", "ferry-probe"});
    target.restore_refusal = again.ok() ? "refused" : std::string(again.status().message());
  }
  // Values copied type by type are built in temporary keys of ferry's own, then renamed: SET
  // with PX 0 ("invalid expire time") and RENAME of a key nobody has ("no such key") check the
  // user's commands and key patterns without writing.
  const std::string temp =
      absl::StrCat("ferry:tmp:{0}:preflight:", absl::Hex(std::random_device()()));
  const std::string renamed = absl::StrCat(temp, ":renamed");
  const ProbeKey temp_key{temp, true};
  for (std::initializer_list<absl::string_view> argv :
       {std::initializer_list<absl::string_view>{"SET", temp, "x", "PX", "0"},
        std::initializer_list<absl::string_view>{"RENAME", temp, renamed}}) {
    absl::Status status = ProbeCommand(conn, "target", &temp_key, argv);
    if (status.code() == absl::StatusCode::kPermissionDenied) {
      target.temp_key_refusal = std::string(status.message());
      break;
    }
    FERRY_RETURN_IF_ERROR(status);
  }
  // Strings are written with SET; PX 0 is "invalid expire time".
  FERRY_RETURN_IF_ERROR(ProbeCommand(conn, "target", &key, {"SET", key.name, "x", "PX", "0"}));
  if (!request.replace) {
    // Keys found on the target are read, to tell this job's own earlier writes from conflicts.
    FERRY_RETURN_IF_ERROR(ProbeCommand(conn, "target", &key, {"GET", key.name}));
    return ProbeCommand(conn, "target", &key, {"DUMP", key.name});
  }
  // Keys that expire on the way are deleted. DEL has no form that fails after the ACL check,
  // so it names a key nobody has: 128 random bits. Its pattern may be refused; the command
  // is what counts here (ACL checks it first).
  std::random_device random;
  std::string name = absl::StrCat(kFallbackKey, ":");
  for (int word = 0; word < 4; ++word) absl::StrAppend(&name, absl::Hex(random(), absl::kZeroPad8));
  const ProbeKey unused{name, false};
  return ProbeCommand(conn, "target", &unused, {"DEL", unused.name});
}

absl::StatusOr<Connection> OpenNode(const redis::Endpoint& seed, const redis::ClusterNode& node,
                                    const redis::ConnectOptions& options, absl::string_view side) {
  const redis::Endpoint endpoint = redis::NodeEndpoint(seed, node);
  absl::StatusOr<Connection> conn = Connection::Open(endpoint, options);
  if (!conn.ok()) return Annotate(conn.status(), absl::StrCat(side, " node ", endpoint.Address()));
  if (!node.primary) {
    absl::Status readonly = conn->Command({"READONLY"}).status();
    if (!readonly.ok()) {
      return Annotate(readonly, absl::StrCat(side, " node ", endpoint.Address()));
    }
  }
  return conn;
}

// Probes the replicas of `p` that will be read and records their scheme; the primary itself
// when it has none.
absl::Status InspectReadNodes(const PlanRequest& request, const redis::ClusterTopology& topology,
                              Connection& primary_conn, ClusterPrimary& p,
                              std::vector<std::string>* warnings) {
  const std::vector<const redis::ClusterNode*> replicas =
      request.read_from_replicas ? topology.HealthyReplicasOf(p.node.id)
                                 : std::vector<const redis::ClusterNode*>();
  p.read_address = redis::NodeEndpoint(request.source, p.node).Address();
  p.scheme = p.facts.scheme;
  if (replicas.empty()) {
    if (request.read_from_replicas) {
      warnings->push_back(absl::StrCat(request.source_name, " primary ", p.read_address,
                                       " has no healthy replica: it is read itself"));
    }
    FERRY_ASSIGN_OR_RETURN(ProbeKey key,
                           ProbeReads(request, primary_conn, request.source_name, /*mget=*/false));
    p.facts.payload_version = key.payload_version;
    return absl::OkStatus();
  }
  for (size_t i = 0; i < replicas.size(); ++i) {
    FERRY_ASSIGN_OR_RETURN(Connection conn, OpenNode(request.source, *replicas[i], request.connect,
                                                     request.source_name));
    FERRY_ASSIGN_OR_RETURN(ServerFacts facts, ReadFacts(conn));
    FERRY_ASSIGN_OR_RETURN(ProbeKey key,
                           ProbeReads(request, conn, request.source_name, /*mget=*/false));
    p.facts.payload_version = std::max(p.facts.payload_version, key.payload_version);
    const std::string address = redis::NodeEndpoint(request.source, *replicas[i]).Address();
    if (i == 0) {
      p.read_address = address;
      p.scheme = facts.scheme;
    } else if (facts.scheme != p.scheme) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the replicas of source primary ", redis::NodeEndpoint(request.source, p.node).Address(),
          " use different SCAN cursor schemes (", address, " is ",
          redis::ScanSchemeName(facts.scheme),
          "): finish the upgrade, or read from the "
          "primaries"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ClusterPrimary>> InspectPrimaries(const PlanRequest& request,
                                                             Connection& seed,
                                                             const redis::Endpoint& seed_endpoint,
                                                             bool source,
                                                             std::vector<std::string>* warnings) {
  const absl::string_view side = source ? absl::string_view(request.source_name) : "target";
  absl::StatusOr<redis::ClusterTopology> topology = redis::DiscoverTopology(seed);
  if (!topology.ok()) return Annotate(topology.status(), side);
  std::vector<ClusterPrimary> primaries;
  for (const redis::ClusterNode* node : topology->Primaries()) {
    if (node->slots.empty()) continue;
    ClusterPrimary& p = primaries.emplace_back();
    p.node = *node;
    FERRY_ASSIGN_OR_RETURN(Connection conn, OpenNode(seed_endpoint, *node, request.connect, side));
    absl::StatusOr<ServerFacts> facts = ReadFacts(conn);
    if (!facts.ok()) {
      return Annotate(facts.status(), absl::StrCat(side, " node ", conn.endpoint().Address()));
    }
    p.facts = *std::move(facts);
    if (source) FERRY_RETURN_IF_ERROR(InspectReadNodes(request, *topology, conn, p, warnings));
  }
  if (primaries.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the ", side, " cluster has no primary that serves slots"));
  }
  return primaries;
}

}  // namespace

absl::StatusOr<std::map<int, uint64_t>> SourceDbSizes(const PlanRequest& request,
                                                      std::vector<int> dbs) {
  redis::Endpoint endpoint = request.source;
  endpoint.db.reset();
  absl::StatusOr<Connection> conn = Connection::Open(endpoint, request.connect);
  if (!conn.ok()) return Annotate(conn.status(), request.source_name);
  if (dbs.empty()) {
    for (int db = 0; db < kProbeDbLimit; ++db) dbs.push_back(db);
  }
  std::map<int, uint64_t> out;
  for (int db : dbs) {
    if (!conn->Select(db).ok()) break;  // Past the last database.
    absl::StatusOr<Reply> size = conn->Command({"DBSIZE"});
    if (!size.ok()) return Annotate(size.status(), request.source_name);
    out[db] = size->integer() > 0 ? static_cast<uint64_t>(size->integer()) : 0;
  }
  return out;
}

absl::StatusOr<uint64_t> SourceNodeDbSize(const PlanRequest& request,
                                          const redis::ClusterNode& node) {
  FERRY_ASSIGN_OR_RETURN(Connection conn,
                         OpenNode(request.source, node, request.connect, request.source_name));
  absl::StatusOr<Reply> size = conn.Command({"DBSIZE"});
  if (!size.ok())
    return Annotate(size.status(),
                    absl::StrCat(request.source_name, " node ", conn.endpoint().Address()));
  return size->integer() > 0 ? static_cast<uint64_t>(size->integer()) : 0;
}

std::vector<std::string> Deployment::RunIds() const {
  std::vector<std::string> out;
  if (!cluster()) out.push_back(seed.run_id);
  for (const ClusterPrimary& p : primaries) out.push_back(p.facts.run_id);
  out.erase(std::remove(out.begin(), out.end(), std::string()), out.end());
  return out;
}

uint64_t Deployment::Keys() const {
  uint64_t keys = 0;
  if (!cluster()) {
    for (const auto& [db, n] : seed.keyspace) keys += n;
  }
  for (const ClusterPrimary& p : primaries) {
    auto it = p.facts.keyspace.find(0);
    if (it != p.facts.keyspace.end()) keys += it->second;
  }
  return keys;
}

int64_t Deployment::UsedMemoryDataset() const {
  if (!cluster()) return seed.used_memory_dataset;
  int64_t sum = 0;
  for (const ClusterPrimary& p : primaries) {
    if (p.facts.used_memory_dataset < 0) return -1;
    sum += p.facts.used_memory_dataset;
  }
  return sum;
}

redis::Capabilities Deployment::Oldest() const {
  redis::Capabilities oldest = seed.caps;
  for (const ClusterPrimary& p : primaries) {
    if (p.facts.caps.version() < oldest.version()) oldest = p.facts.caps;
  }
  return oldest;
}

int Deployment::PayloadVersion() const {
  int version = seed.payload_version;
  for (const ClusterPrimary& p : primaries) version = std::max(version, p.facts.payload_version);
  return version;
}

int64_t Deployment::MaxMemory() const {
  if (!cluster()) return seed.maxmemory;
  int64_t sum = 0;
  for (const ClusterPrimary& p : primaries) {
    if (p.facts.maxmemory <= 0) return p.facts.maxmemory;  // Unknown, or no limit.
    sum += p.facts.maxmemory;
  }
  return sum;
}

absl::StatusOr<Deployment> InspectSource(const PlanRequest& request,
                                         std::vector<std::string>* warnings) {
  redis::Endpoint endpoint = request.source;
  endpoint.db.reset();
  absl::StatusOr<Connection> conn = Connection::Open(endpoint, request.connect);
  if (!conn.ok()) return Annotate(conn.status(), request.source_name);
  Deployment source;
  absl::StatusOr<ServerFacts> facts = ReadFacts(*conn);
  if (!facts.ok()) return Annotate(facts.status(), request.source_name);
  source.seed = *std::move(facts);
  if (!source.cluster()) {
    SelectCopiedDb(request, source.seed, *conn);
    FERRY_ASSIGN_OR_RETURN(ProbeKey key,
                           ProbeReads(request, *conn, request.source_name, /*mget=*/true));
    if (key.sampled) source.probe_key = key.name;
    source.seed.payload_version = key.payload_version;
    return source;
  }
  FERRY_ASSIGN_OR_RETURN(source.primaries,
                         InspectPrimaries(request, *conn, endpoint, /*source=*/true, warnings));
  absl::StatusOr<ProbeKey> key = SampleKey(*conn, request.match, request.big_key_bytes);
  if (!key.ok()) return Annotate(key.status(), request.source_name);
  if (key->sampled) source.probe_key = key->name;
  return source;
}

absl::StatusOr<Deployment> InspectTarget(const PlanRequest& request, absl::string_view probe_key) {
  redis::Endpoint endpoint = request.target;
  endpoint.db.reset();
  absl::StatusOr<Connection> conn = Connection::Open(endpoint, request.connect);
  if (!conn.ok()) return Annotate(conn.status(), "target");
  Deployment target;
  absl::StatusOr<ServerFacts> facts = ReadFacts(*conn);
  if (!facts.ok()) return Annotate(facts.status(), "target");
  target.seed = *std::move(facts);
  if (target.cluster()) {
    FERRY_ASSIGN_OR_RETURN(target.primaries,
                           InspectPrimaries(request, *conn, endpoint, /*source=*/false, nullptr));
  }
  FERRY_RETURN_IF_ERROR(ProbeWrites(request, *conn, probe_key, target));
  return target;
}

}  // namespace ferry::server
