#pragma once

// What planning learns about each side of a copy before any write: server facts (INFO), the
// cluster's primaries and the nodes that will be read, and whether the commands ferry needs are
// permitted. Used by the planner (planner.cc, plan_checks.cc) only.

#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/redis/capabilities.h"
#include "common/redis/cluster.h"
#include "common/redis/connection.h"
#include "common/redis/scan_math.h"
#include "server/planner.h"
#include "server/preflight_report.h"

namespace ferry::server {

// One server's answers to INFO (or, for users that may not run INFO, what could be probed).
struct ServerFacts {
  std::string run_id;
  std::string version;  // redis_version: "7.0.15" (Valkey reports "7.2.4").
  redis::Capabilities caps = redis::Capabilities::ForVersion({4, 0});
  // The DUMP payload version of a value the copy reads (source nodes, when a key was found);
  // -1: unknown.
  int payload_version = -1;
  bool cluster = false;
  redis::ScanScheme scheme = redis::ScanScheme::kSingleDict;
  int64_t used_memory_dataset = -1;
  int64_t used_memory = -1;  // What maxmemory is compared with.
  int64_t maxmemory = -1;
  std::string maxmemory_policy;      // "noeviction", "allkeys-lru"...; empty when unknown.
  int64_t evicted_keys = -1;         // INFO stats; -1 when unknown.
  std::map<int, uint64_t> keyspace;  // db -> keys.
};

// A primary of a cluster and the node its shards read.
struct ClusterPrimary {
  redis::ClusterNode node;
  ServerFacts facts;         // The primary's: its own key count, run_id, memory.
  std::string read_address;  // `host:port` of the node read: the primary or a replica.
  redis::ScanScheme scheme;  // The cursor scheme of the node read.
};

// One side of a copy.
struct Deployment {
  ServerFacts seed;                       // The server the URI names.
  std::vector<ClusterPrimary> primaries;  // Cluster: each primary that serves slots.
  // Source: a key the copy reads (SCAN with the job's MATCH), for the target's permission
  // probes; empty when none was found.
  std::string probe_key;
  // Target: why RESTORE may not be used (an ACL, a renamed command); empty when it may.
  std::string restore_refusal;
  // Target: why ferry's temporary keys (ferry:tmp:*, where values copied type by type are
  // built) may not be written; empty when they may.
  std::string temp_key_refusal;
  // Target, ferry preflight: the write commands were neither asked (ACL DRYRUN) nor probed.
  bool writes_unchecked = false;
  // Target, ferry preflight: how the write commands were checked, for the report; empty when
  // not checked or for a job.
  std::string write_check;

  bool cluster() const { return seed.cluster; }
  // run_id of every primary (of the server, standalone).
  std::vector<std::string> RunIds() const;
  // Keys in every database (standalone) or in db 0 of every primary.
  uint64_t Keys() const;
  // Sums over the primaries; -1 when some value is unknown.
  int64_t UsedMemoryDataset() const;
  int64_t UsedMemory() const;
  int64_t MaxMemory() const;
  // maxmemory-policy (of the first primary, cluster); empty when unknown.
  const std::string& MaxMemoryPolicy() const;
  // The capabilities of the oldest node, and the newest payload version seen (-1: none).
  redis::Capabilities Oldest() const;
  int PayloadVersion() const;
};

// Connects to the source, reads its facts and, for a cluster, each primary's (and chooses the
// node to read: a replica of each primary with request.read_from_replicas), then checks that
// SCAN, PTTL and DUMP (and MGET, standalone) are permitted on every node that will be read, on
// a key the copy reads (the first SCAN with request.match finds) so that key patterns are
// checked too. Each refused command is an error in `findings`, and so are warnings; the status
// fails only when there is no Deployment to return (cannot connect, AUTH, INFO, topology).
// Errors are prefixed "source".
absl::StatusOr<Deployment> InspectSource(const PlanRequest& request, Findings& findings);

// DBSIZE of each of `dbs` (empty: every database SELECT accepts, up to 16) on a standalone
// source: key counts that do not depend on INFO, to cross-check a plan.
absl::StatusOr<std::map<int, uint64_t>> SourceDbSizes(const PlanRequest& request,
                                                      std::vector<int> dbs);
// DBSIZE on one node of a source cluster.
absl::StatusOr<uint64_t> SourceNodeDbSize(const PlanRequest& request,
                                          const redis::ClusterNode& node);

// Connects to the target, reads its facts (each primary's, for a cluster) and checks, without
// writing, that RESTORE, SET and DEL (GET and DUMP instead of DEL unless request.replace) are
// permitted, on `probe_key` (the source's probe_key; empty: a key of ferry's own):
// preflight_probes.h ProbeWrites. Refusals go to `findings` as in InspectSource. Errors are
// prefixed "target".
absl::StatusOr<Deployment> InspectTarget(const PlanRequest& request, absl::string_view probe_key,
                                         Findings& findings);

}  // namespace ferry::server
