#include "common/testing/redis_cluster.h"

#include <stdlib.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/base/status_macros.h"
#include "common/redis/connection.h"
#include "common/redis/slot.h"

namespace ferry::testing {
namespace {

absl::StatusOr<std::string> InfoOf(const RedisServer& node, absl::string_view section) {
  FERRY_ASSIGN_OR_RETURN(redis::Connection connection, node.Connect());
  FERRY_ASSIGN_OR_RETURN(redis::Reply reply, connection.Command({"INFO", section}));
  return std::string(reply.str());
}

absl::StatusOr<std::string> ClusterCommand(const RedisServer& node,
                                           std::initializer_list<absl::string_view> args) {
  FERRY_ASSIGN_OR_RETURN(redis::Connection connection, node.Connect());
  std::vector<absl::string_view> argv = {"CLUSTER"};
  argv.insert(argv.end(), args.begin(), args.end());
  FERRY_ASSIGN_OR_RETURN(redis::Reply reply, connection.Command(argv));
  return std::string(reply.str());
}

// What every node must agree on, from one node's CLUSTER NODES: per node its id, role, primary
// and slots, without the flags that differ from node to node (myself, fail?, link state).
// Not ready while a handshake or a slot migration (`[slot->-id]`) is in progress.
absl::StatusOr<std::string> ConfigSignature(absl::string_view cluster_nodes) {
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(cluster_nodes, '\n', absl::SkipWhitespace())) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    if (fields.size() < 8) return absl::InternalError("CLUSTER NODES: short line");
    if (absl::StrContains(fields[2], "handshake") || absl::StrContains(line, "[")) {
      return absl::UnavailableError("handshake or slot migration in progress");
    }
    const bool master = absl::StrContains(fields[2], "master");
    std::vector<absl::string_view> slots(fields.begin() + 8, fields.end());
    lines.push_back(absl::StrCat(fields[0], master ? " master " : " replica ",
                                 master ? "-" : fields[3], " ", absl::StrJoin(slots, ",")));
  }
  std::sort(lines.begin(), lines.end());
  return absl::StrJoin(lines, "\n");
}

absl::Status RestoreBatch(redis::Connection& from, redis::Connection& into,
                          const std::vector<std::string>& keys) {
  for (const std::string& key : keys) {
    from.Append({"PTTL", key});
    from.Append({"DUMP", key});
  }
  FERRY_RETURN_IF_ERROR(from.Flush());
  std::vector<std::pair<redis::Reply, redis::Reply>> read;
  for (size_t i = 0; i < keys.size(); ++i) {
    FERRY_ASSIGN_OR_RETURN(redis::Reply pttl, from.ReadReply());
    FERRY_ASSIGN_OR_RETURN(redis::Reply dump, from.ReadReply());
    read.emplace_back(std::move(pttl), std::move(dump));
  }
  size_t sent = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    const auto& [pttl, dump] = read[i];
    if (pttl.is_error() || dump.is_error()) {
      return absl::InternalError(absl::StrCat("PTTL/DUMP failed: ", pttl.str(), dump.str()));
    }
    if (pttl.integer() == -2 || dump.is_nil()) continue;  // Expired or deleted meanwhile.
    const std::string ttl = absl::StrCat(std::max<int64_t>(pttl.integer(), 0));
    into.Append({"RESTORE", keys[i], ttl, dump.str(), "REPLACE"});
    ++sent;
  }
  FERRY_RETURN_IF_ERROR(into.Flush());
  for (size_t i = 0; i < sent; ++i) {
    FERRY_ASSIGN_OR_RETURN(redis::Reply reply, into.ReadReply());
    if (reply.is_error()) return absl::InternalError(absl::StrCat("RESTORE: ", reply.str()));
  }
  return absl::OkStatus();
}

// Copies every key (matching `match`) of every primary of the cluster at `seed` into db 0 of a
// new standalone server.
absl::StatusOr<std::unique_ptr<RedisServer>> Flatten(const redis::Endpoint& seed,
                                                     const std::string& match) {
  FERRY_ASSIGN_OR_RETURN(redis::Connection seed_connection, redis::Connection::Open(seed));
  FERRY_ASSIGN_OR_RETURN(redis::ClusterTopology topology, redis::DiscoverTopology(seed_connection));
  RedisServerOptions options;
  options.databases = 1;
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<RedisServer> scratch, RedisServer::Start(options));
  FERRY_ASSIGN_OR_RETURN(redis::Connection into, scratch->Connect());
  for (const redis::ClusterNode* primary : topology.Primaries()) {
    if (primary->slots.empty() || primary->failed) continue;
    FERRY_ASSIGN_OR_RETURN(redis::Connection from,
                           redis::Connection::Open(redis::NodeEndpoint(seed, *primary)));
    std::string cursor = "0";
    do {
      FERRY_ASSIGN_OR_RETURN(redis::Reply page,
                             from.Command({"SCAN", cursor, "MATCH", match, "COUNT", "1000"}));
      cursor = std::string(page.element(0).str());
      std::vector<std::string> keys;
      for (size_t i = 0; i < page.element(1).size(); ++i) {
        keys.emplace_back(page.element(1).element(i).str());
      }
      FERRY_RETURN_IF_ERROR(RestoreBatch(from, into, keys));
    } while (cursor != "0");
  }
  return scratch;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RedisCluster>> RedisCluster::Start(int primaries,
                                                                  int replicas_per_primary,
                                                                  RedisServerOptions base) {
  FERRY_RETURN_IF_ERROR(RequireRedisServerBinary());
  if (primaries < 1 || replicas_per_primary < 0) {
    return absl::InvalidArgumentError("a cluster needs at least one primary");
  }
  if (base.tls) return absl::UnimplementedError("RedisCluster does not support TLS");
  base.cluster = true;
  // No 5 s pause before a replica's first full sync.
  std::vector<std::string> defaults = {"cluster-node-timeout 3000", "repl-diskless-sync-delay 0"};
  if (!base.requirepass.empty()) {
    std::string quoted;
    for (char c : base.requirepass) {
      if (c == '"' || c == '\\') quoted.push_back('\\');
      quoted.push_back(c);
    }
    defaults.push_back("masterauth \"" + quoted + "\"");
  }
  base.extra_config.insert(base.extra_config.begin(), defaults.begin(), defaults.end());

  std::unique_ptr<RedisCluster> cluster(new RedisCluster());
  cluster->dir_ = MakeTempDir("ferry-cluster-");
  if (cluster->dir_.empty()) return absl::InternalError("cannot create a temp dir");
  const int total = primaries * (1 + replicas_per_primary);
  for (int i = 0; i < total; ++i) {
    FERRY_ASSIGN_OR_RETURN(std::unique_ptr<RedisServer> node, RedisServer::Start(base));
    cluster->nodes_.push_back(std::move(node));
  }
  FERRY_RETURN_IF_ERROR(
      Annotate(cluster->Join(primaries, replicas_per_primary), "joining the cluster nodes"));
  FERRY_RETURN_IF_ERROR(cluster->WaitHealthy());
  return cluster;
}

RedisCluster::~RedisCluster() {
  nodes_.clear();
  const char* keep = getenv("FERRY_KEEP_TEST_DIRS");
  if (!dir_.empty() && (keep == nullptr || std::string(keep) != "1")) (void)RemoveTree(dir_);
}

absl::Status RedisCluster::Join(int primaries, int replicas_per_primary) {
  const int total = static_cast<int>(nodes_.size());
  for (int i = 0; i < total; ++i) {
    FERRY_ASSIGN_OR_RETURN(std::string id, ClusterCommand(*nodes_[i], {"MYID"}));
    ids_.push_back(id);
    // Distinct epochs up front, as redis-cli does, so no collision has to be resolved.
    FERRY_RETURN_IF_ERROR(
        ClusterCommand(*nodes_[i], {"SET-CONFIG-EPOCH", absl::StrCat(i + 1)}).status());
  }
  for (int p = 0; p < primaries; ++p) {
    const std::string first = absl::StrCat(p * redis::kClusterSlots / primaries);
    const std::string last = absl::StrCat((p + 1) * redis::kClusterSlots / primaries - 1);
    FERRY_RETURN_IF_ERROR(ClusterCommand(*nodes_[p], {"ADDSLOTSRANGE", first, last}).status());
  }
  const std::string seed_port = absl::StrCat(nodes_[0]->port());
  for (int i = 1; i < total; ++i) {
    FERRY_RETURN_IF_ERROR(ClusterCommand(*nodes_[i], {"MEET", "127.0.0.1", seed_port}).status());
  }
  // A replica can follow its primary once it has heard of it through gossip.
  absl::Status last;
  for (int r = primaries; r < total; ++r) {
    const std::string& primary_id = ids_[(r - primaries) / std::max(replicas_per_primary, 1)];
    absl::Status waited = WaitFor(
        [&] {
          last = ClusterCommand(*nodes_[r], {"REPLICATE", primary_id}).status();
          return last.ok();
        },
        absl::Seconds(30), absl::Milliseconds(50));
    if (!waited.ok()) return Annotate(last, absl::StrCat("node ", r, ": CLUSTER REPLICATE"));
  }
  // A replica whose replication offset is still 0 counts as loading: CLUSTER SLOTS leaves it
  // out. FLUSHALL is replicated even on an empty server, which moves the offset.
  for (int p = 0; p < primaries && replicas_per_primary > 0; ++p) {
    FERRY_ASSIGN_OR_RETURN(redis::Connection connection, nodes_[p]->Connect());
    FERRY_RETURN_IF_ERROR(connection.Command({"FLUSHALL"}).status());
  }
  return absl::OkStatus();
}

absl::Status RedisCluster::CheckHealthy() const {
  std::vector<std::pair<std::string, redis::Connection>> running;  // (name, connection)
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (!nodes_[i]->running()) continue;
    FERRY_ASSIGN_OR_RETURN(redis::Connection connection, nodes_[i]->Connect());
    running.emplace_back(absl::StrCat("node ", i, " (port ", nodes_[i]->port(), ")"),
                         std::move(connection));
  }
  std::string agreed;
  size_t replicas = 0;
  for (auto& [name, connection] : running) {
    FERRY_ASSIGN_OR_RETURN(redis::Reply info, connection.Command({"CLUSTER", "INFO"}));
    if (redis::InfoField(info.str(), "cluster_state") != "ok") {
      return absl::UnavailableError(name + ": cluster_state is not ok");
    }
    if (redis::InfoField(info.str(), "cluster_known_nodes") != absl::StrCat(nodes_.size())) {
      return absl::UnavailableError(name + ": does not know every node yet");
    }
    FERRY_ASSIGN_OR_RETURN(redis::Reply nodes_text, connection.Command({"CLUSTER", "NODES"}));
    absl::StatusOr<std::string> signature = ConfigSignature(nodes_text.str());
    if (!signature.ok()) return Annotate(signature.status(), name);
    if (agreed.empty()) agreed = *signature;
    if (*signature != agreed) return absl::UnavailableError(name + ": disagrees on the config");
    FERRY_ASSIGN_OR_RETURN(redis::Reply replication, connection.Command({"INFO", "replication"}));
    if (redis::InfoField(replication.str(), "role") != "slave") continue;
    if (redis::InfoField(replication.str(), "master_link_status") != "up") {
      return absl::UnavailableError(name + ": replication link is not up");
    }
    ++replicas;
  }
  // Every node must offer every replica to clients (CLUSTER SLOTS leaves out replicas whose
  // replication offset it still believes to be 0).
  for (auto& [name, connection] : running) {
    FERRY_ASSIGN_OR_RETURN(redis::Reply slots, connection.Command({"CLUSTER", "SLOTS"}));
    FERRY_ASSIGN_OR_RETURN(redis::ClusterTopology topology,
                           redis::TopologyFromSlots(slots, "127.0.0.1"));
    if (topology.nodes.size() - topology.Primaries().size() < replicas) {
      return absl::UnavailableError(name + ": CLUSTER SLOTS does not list every replica yet");
    }
  }
  return absl::OkStatus();
}

absl::Status RedisCluster::WaitHealthy(absl::Duration timeout) const {
  absl::Status last;
  absl::Status waited = WaitFor(
      [&] {
        last = CheckHealthy();
        return last.ok();
      },
      timeout, absl::Milliseconds(50));
  if (waited.ok()) return waited;
  return absl::DeadlineExceededError(absl::StrCat(
      "cluster not healthy after ", absl::FormatDuration(timeout), ": ", last.message()));
}

absl::StatusOr<std::vector<int>> RedisCluster::PrimaryIndices() const {
  std::vector<int> out;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (!nodes_[i]->running()) continue;
    FERRY_ASSIGN_OR_RETURN(std::string info, InfoOf(*nodes_[i], "replication"));
    if (redis::InfoField(info, "role") == "master") out.push_back(static_cast<int>(i));
  }
  return out;
}

absl::StatusOr<redis::ClusterTopology> RedisCluster::Topology() const {
  for (const auto& node : nodes_) {
    if (!node->running()) continue;
    FERRY_ASSIGN_OR_RETURN(redis::Connection connection, node->Connect());
    return redis::DiscoverTopology(connection);
  }
  return absl::UnavailableError("no cluster node is running");
}

int RedisCluster::IndexOfPort(int port) const {
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i]->port() == port) return static_cast<int>(i);
  }
  return -1;
}

absl::StatusOr<Subprocess> RedisCluster::Reshard(int slots, int from_index, int to_index) const {
  if (FindProgram("redis-cli").empty()) {
    return absl::FailedPreconditionError("redis-cli not found on PATH; install redis-tools");
  }
  const RedisServer& from = node(from_index);
  std::vector<std::string> argv = {"redis-cli"};
  if (!from.options().requirepass.empty()) {
    argv.insert(argv.end(), {"-a", from.options().requirepass, "--no-auth-warning"});
  }
  argv.insert(argv.end(),
              {"--cluster", "reshard", absl::StrCat("127.0.0.1:", from.port()), "--cluster-from",
               ids_[from_index], "--cluster-to", ids_[to_index], "--cluster-slots",
               absl::StrCat(slots), "--cluster-yes", "--cluster-replace"});
  SubprocessOptions options;
  options.log_file = tool_log();
  return Subprocess::Start(std::move(argv), options);
}

absl::StatusOr<int> RedisCluster::Failover(int primary_index) {
  FERRY_ASSIGN_OR_RETURN(redis::ClusterTopology topology, Topology());
  int replica = -1;
  for (const redis::ClusterNode* node : topology.ReplicasOf(ids_[primary_index])) {
    const int index = IndexOfPort(node->port);
    if (index >= 0 && nodes_[index]->running()) replica = index;
  }
  if (replica < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("node ", primary_index, " is not a primary with a running replica"));
  }
  const bool primary_up = nodes_[primary_index]->running();
  // FORCE: a dead primary cannot take part in the handover.
  FERRY_RETURN_IF_ERROR((primary_up ? ClusterCommand(*nodes_[replica], {"FAILOVER"})
                                    : ClusterCommand(*nodes_[replica], {"FAILOVER", "FORCE"}))
                            .status());
  auto role_of = [this](int index) {
    absl::StatusOr<std::string> info = InfoOf(*nodes_[index], "replication");
    return info.ok() ? redis::InfoField(*info, "role") : "";
  };
  absl::Status switched = WaitFor(
      [&] {
        return role_of(replica) == "master" && (!primary_up || role_of(primary_index) == "slave");
      },
      absl::Seconds(30), absl::Milliseconds(20));
  if (!switched.ok()) {
    return Annotate(switched, absl::StrCat("failover of node ", primary_index, " to ", replica));
  }
  FERRY_RETURN_IF_ERROR(WaitHealthy());
  return replica;
}

absl::StatusOr<std::vector<KeyDiff>> CompareDeployments(const redis::Endpoint& source,
                                                        int source_db,
                                                        const redis::Endpoint& target,
                                                        int target_db,
                                                        const CompareOptions& options) {
  // Each side: a connection to the server to compare, a scratch copy when it is a cluster.
  struct Side {
    std::unique_ptr<RedisServer> scratch;
    std::optional<redis::Connection> connection;
    int db = 0;
  };
  auto open_side = [&](const redis::Endpoint& endpoint, int db) -> absl::StatusOr<Side> {
    redis::Endpoint plain = endpoint;
    plain.db.reset();
    FERRY_ASSIGN_OR_RETURN(redis::Connection probe, redis::Connection::Open(plain));
    FERRY_ASSIGN_OR_RETURN(bool cluster, redis::DetectClusterMode(probe));
    Side side;
    side.db = db;
    if (!cluster) {
      side.connection.emplace(std::move(probe));
      return side;
    }
    if (db != 0) return absl::InvalidArgumentError("a cluster only has db 0");
    FERRY_ASSIGN_OR_RETURN(side.scratch, Flatten(plain, options.match));
    FERRY_ASSIGN_OR_RETURN(redis::Connection scratch, side.scratch->Connect());
    side.connection.emplace(std::move(scratch));
    return side;
  };
  FERRY_ASSIGN_OR_RETURN(Side s, open_side(source, source_db));
  FERRY_ASSIGN_OR_RETURN(Side t, open_side(target, target_db));
  return CompareDatabases(*s.connection, s.db, *t.connection, t.db, options);
}

absl::StatusOr<std::vector<KeyDiff>> CompareClusterWith(const RedisCluster& source,
                                                        const redis::Endpoint& target,
                                                        int target_db,
                                                        const CompareOptions& options) {
  return CompareDeployments(source.endpoint(), 0, target, target_db, options);
}

}  // namespace ferry::testing
