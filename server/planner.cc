#include "server/planner.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/status_macros.h"
#include "common/redis/errors.h"

namespace ferry::server {
namespace {

using redis::Connection;
using redis::Reply;

constexpr int kProbeDbLimit = 16;

struct ServerFacts {
  std::string run_id;
  std::string version;
  bool cluster = false;
  int64_t used_memory_dataset = -1;
  int64_t maxmemory = -1;
  std::map<int, uint64_t> keyspace;
};

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
  absl::StatusOr<Reply> info = conn.Command({"INFO", "everything"});
  if (!info.ok() && info.status().code() != absl::StatusCode::kPermissionDenied) {
    return info.status();
  }
  if (!info.ok()) {
    // ElastiCache-style read-only users may lack INFO; count keys the slow way.
    FERRY_ASSIGN_OR_RETURN(facts.keyspace, KeyspaceByProbing(conn));
    return facts;
  }
  const absl::string_view text = info->str();
  facts.run_id = redis::InfoField(text, "run_id");
  facts.version = redis::InfoField(text, "redis_version");
  facts.cluster = redis::InfoField(text, "cluster_enabled") == "1";
  (void)absl::SimpleAtoi(redis::InfoField(text, "used_memory_dataset"), &facts.used_memory_dataset);
  (void)absl::SimpleAtoi(redis::InfoField(text, "maxmemory"), &facts.maxmemory);
  facts.keyspace = ParseKeyspace(text);
  return facts;
}

// Sends `argv` and accepts any reply but a permission problem, which it explains.
absl::Status ProbeCommand(Connection& conn, absl::string_view side,
                          std::initializer_list<absl::string_view> argv) {
  absl::StatusOr<Reply> reply = conn.Command(argv);
  if (reply.ok()) return absl::OkStatus();
  const absl::Status& s = reply.status();
  const std::string command(*argv.begin());
  switch (s.code()) {
    case absl::StatusCode::kPermissionDenied:
      return absl::PermissionDeniedError(
          absl::StrCat("the ", side, " does not allow ", command, " (", s.message(),
                       "); ferry needs SCAN, PTTL and DUMP on the source and RESTORE on the "
                       "target"));
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kResourceExhausted:
      return Annotate(s, side);
    default:
      return absl::OkStatus();  // Bad payload, wrong args: the command itself is allowed.
  }
}

int CompareVersions(absl::string_view a, absl::string_view b) {
  std::vector<absl::string_view> pa = absl::StrSplit(a, '.');
  std::vector<absl::string_view> pb = absl::StrSplit(b, '.');
  for (size_t i = 0; i < std::max(pa.size(), pb.size()); ++i) {
    int x = 0, y = 0;
    if (i < pa.size()) (void)absl::SimpleAtoi(pa[i], &x);
    if (i < pb.size()) (void)absl::SimpleAtoi(pb[i], &y);
    if (x != y) return x < y ? -1 : 1;
  }
  return 0;
}

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

}  // namespace

std::map<int, uint64_t> ParseKeyspace(absl::string_view info) {
  // Lines like `db3:keys=120,expires=4,avg_ttl=0`.
  std::map<int, uint64_t> out;
  for (absl::string_view line : absl::StrSplit(info, '\n')) {
    if (!absl::ConsumePrefix(&line, "db")) continue;
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(line, ':');
    int db = 0;
    if (!absl::SimpleAtoi(kv.first, &db)) continue;
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

absl::StatusOr<Plan> PlanCopy(const PlanRequest& request) {
  redis::Endpoint source_endpoint = request.source;
  source_endpoint.db.reset();
  absl::StatusOr<Connection> source = Connection::Open(source_endpoint, request.connect);
  if (!source.ok()) return Annotate(source.status(), "source");
  absl::StatusOr<ServerFacts> src_facts = ReadFacts(*source);
  if (!src_facts.ok()) return Annotate(src_facts.status(), "source");
  const ServerFacts& src = *src_facts;
  if (src.cluster) {
    return absl::InvalidArgumentError(
        "the source runs in cluster mode, which this version of ferry cannot copy yet");
  }
  FERRY_ASSIGN_OR_RETURN(std::vector<int> dbs, SelectDbs(request, src.keyspace));
  FERRY_RETURN_IF_ERROR(ProbeCommand(*source, "source", {"SCAN", "0", "COUNT", "1"}));
  FERRY_RETURN_IF_ERROR(ProbeCommand(*source, "source", {"PTTL", "ferry:preflight"}));
  FERRY_RETURN_IF_ERROR(ProbeCommand(*source, "source", {"DUMP", "ferry:preflight"}));

  Plan plan;
  plan.source_run_id = src.run_id;
  if (!request.dry_run) {
    redis::Endpoint target_endpoint = request.target;
    target_endpoint.db.reset();
    absl::StatusOr<Connection> target = Connection::Open(target_endpoint, request.connect);
    if (!target.ok()) return Annotate(target.status(), "target");
    absl::StatusOr<ServerFacts> dst = ReadFacts(*target);
    if (!dst.ok()) return Annotate(dst.status(), "target");
    if (dst->cluster) {
      return absl::InvalidArgumentError(
          "the target runs in cluster mode, which this version of ferry cannot write yet");
    }
    const std::optional<int> target_db = request.target_db;
    if (!src.run_id.empty() && src.run_id == dst->run_id) {
      for (int db : dbs) {
        if (target_db.value_or(db) == db) {
          return absl::InvalidArgumentError(
              absl::StrCat("the target is the source itself (same server, database ", db, ")"));
        }
      }
    }
    // An invalid payload: RESTORE answers "payload version or checksum are wrong" when it is
    // allowed, and writes nothing.
    FERRY_RETURN_IF_ERROR(
        ProbeCommand(*target, "target", {"RESTORE", "ferry:preflight", "0", "ferry-probe"}));
    if (!src.version.empty() && !dst->version.empty() &&
        CompareVersions(src.version, dst->version) > 0) {
      plan.warnings.push_back(absl::StrCat("the source runs Redis ", src.version,
                                           ", newer than the target's ", dst->version,
                                           ": keys the target cannot read will fail"));
    }
    if (dst->maxmemory > 0 && src.used_memory_dataset > dst->maxmemory) {
      plan.warnings.push_back(absl::StrCat("the source's dataset (", src.used_memory_dataset,
                                           " bytes) is larger than the "
                                           "target's maxmemory (",
                                           dst->maxmemory,
                                           " bytes): the target may run out of memory"));
    }
    uint64_t target_keys = 0;
    for (const auto& [db, keys] : dst->keyspace) target_keys += keys;
    if (target_keys > 0) {
      plan.warnings.push_back(absl::StrCat("the target is not empty (", target_keys,
                                           " keys); existing keys may be overwritten"));
    }
  }
  for (int db : dbs) {
    auto it = src.keyspace.find(db);
    const uint64_t keys = it == src.keyspace.end() ? 0 : it->second;
    plan.keys_per_db[db] = keys;
    plan.estimated_keys += keys;
    if (keys == 0) continue;
    int bits = ShardBitsForKeys(keys);
    if (request.shards > 0) {
      bits = 0;
      while ((1 << bits) < request.shards && bits < 16) ++bits;
    }
    for (uint64_t s = 0; s < (uint64_t{1} << bits); ++s) {
      plan.shards.push_back({db, request.target_db.value_or(db), bits, s});
    }
  }
  return plan;
}

}  // namespace ferry::server
