#include "server/preflight.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/base/status_macros.h"
#include "common/redis/errors.h"
#include "common/redis/info.h"
#include "server/preflight_probes.h"

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
  (void)absl::SimpleAtoi(redis::InfoField(text, "used_memory"), &facts.used_memory);
  (void)absl::SimpleAtoi(redis::InfoField(text, "maxmemory"), &facts.maxmemory);
  facts.maxmemory_policy = redis::InfoField(text, "maxmemory_policy");
  (void)absl::SimpleAtoi(redis::InfoField(text, "evicted_keys"), &facts.evicted_keys);
  facts.keyspace = ParseKeyspace(text);
  return facts;
}

// Selects the first database the copy reads, so that SampleKey finds one of its keys.
void SelectCopiedDb(const PlanRequest& request, const ServerFacts& facts, Connection& conn) {
  std::optional<int> db = request.source.db;
  if (!db.has_value() && !request.dbs.empty()) db = request.dbs.front();
  if (!db.has_value() && !facts.keyspace.empty()) db = facts.keyspace.begin()->first;
  // A database that does not exist is the planner's to report.
  if (db.has_value()) (void)conn.Select(*db);
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
                              Connection& primary_conn, ClusterPrimary& p, Findings& findings) {
  const std::vector<const redis::ClusterNode*> replicas =
      request.read_from_replicas ? topology.HealthyReplicasOf(p.node.id)
                                 : std::vector<const redis::ClusterNode*>();
  p.read_address = redis::NodeEndpoint(request.source, p.node).Address();
  p.scheme = p.facts.scheme;
  if (replicas.empty()) {
    if (request.read_from_replicas) {
      findings.Warning(check::kCluster,
                       absl::StrCat(request.source_name, " primary ", p.read_address,
                                    " has no healthy replica: it is read itself"));
    }
    FERRY_ASSIGN_OR_RETURN(ProbeKey key,
                           ProbeReads(request, primary_conn, p.facts.caps, request.source_name,
                                      /*mget=*/false, findings));
    p.facts.payload_version = key.payload_version;
    return absl::OkStatus();
  }
  for (size_t i = 0; i < replicas.size(); ++i) {
    FERRY_ASSIGN_OR_RETURN(Connection conn, OpenNode(request.source, *replicas[i], request.connect,
                                                     request.source_name));
    FERRY_ASSIGN_OR_RETURN(ServerFacts facts, ReadFacts(conn));
    FERRY_ASSIGN_OR_RETURN(ProbeKey key, ProbeReads(request, conn, facts.caps, request.source_name,
                                                    /*mget=*/false, findings));
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
                                                             bool source, Findings& findings) {
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
    if (source) FERRY_RETURN_IF_ERROR(InspectReadNodes(request, *topology, conn, p, findings));
    if (findings.Stop()) break;
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
  // One pipeline of SELECT, DBSIZE pairs: one round trip, however far the source is.
  for (int db : dbs) {
    const std::string index = std::to_string(db);
    conn->Append({"SELECT", index});
    conn->Append({"DBSIZE"});
  }
  std::map<int, uint64_t> out;
  bool past_last = false;
  for (int db : dbs) {
    absl::StatusOr<Reply> selected = conn->ReadReply();
    if (!selected.ok()) return Annotate(selected.status(), request.source_name);
    absl::StatusOr<Reply> size = conn->ReadReply();
    if (!size.ok()) return Annotate(size.status(), request.source_name);
    // Past the last database: SELECT fails there and after.
    past_last = past_last || selected->is_error();
    if (past_last) continue;
    if (size->is_error()) {
      return Annotate(redis::StatusFromReplyError(size->str()),
                      absl::StrCat(request.source_name, " DBSIZE"));
    }
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

int64_t Deployment::UsedMemory() const {
  if (!cluster()) return seed.used_memory;
  int64_t sum = 0;
  for (const ClusterPrimary& p : primaries) {
    if (p.facts.used_memory < 0) return -1;
    sum += p.facts.used_memory;
  }
  return sum;
}

const std::string& Deployment::MaxMemoryPolicy() const {
  return cluster() && !primaries.empty() ? primaries.front().facts.maxmemory_policy
                                         : seed.maxmemory_policy;
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

absl::StatusOr<Deployment> InspectSource(const PlanRequest& request, Findings& findings) {
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
                           ProbeReads(request, *conn, source.seed.caps, request.source_name,
                                      /*mget=*/true, findings));
    if (key.sampled) source.probe_key = key.name;
    source.seed.payload_version = key.payload_version;
    return source;
  }
  FERRY_ASSIGN_OR_RETURN(source.primaries,
                         InspectPrimaries(request, *conn, endpoint, /*source=*/true, findings));
  absl::StatusOr<ProbeKey> key = SampleKey(*conn, request.match, request.big_key_bytes);
  if (!key.ok()) return Annotate(key.status(), request.source_name);
  if (key->sampled) source.probe_key = key->name;
  return source;
}

absl::StatusOr<Deployment> InspectTarget(const PlanRequest& request, absl::string_view probe_key,
                                         Findings& findings) {
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
                           InspectPrimaries(request, *conn, endpoint, /*source=*/false, findings));
  }
  FERRY_RETURN_IF_ERROR(ProbeWrites(request, *conn, probe_key, target, findings));
  return target;
}

}  // namespace ferry::server
