#include "common/redis/router.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/redis/errors.h"
#include "common/redis/slot.h"

namespace ferry::redis {

struct Router::Node {
  Endpoint endpoint;
  std::optional<Connection> connection;  // Opened on first use, dropped after a transport error.
};

// One Execute call: which commands still need a reply, where the next attempt of each goes,
// and what the last round asked for (a backoff, a topology refresh).
class Router::Run {
 public:
  explicit Run(Router& router)
      : router_(router),
        replies_(router.commands_.size()),
        answered_(router.commands_.size(), false),
        ask_node_(router.commands_.size(), -1) {}

  absl::StatusOr<std::vector<Reply>> Go() {
    std::vector<size_t> todo(replies_.size());
    std::iota(todo.begin(), todo.end(), 0);
    const RouterRetryPolicy& retry = router_.retry_;
    const absl::Time deadline = absl::Now() + retry.max_duration;
    absl::Duration backoff = retry.initial_backoff;
    for (int round = 1; !todo.empty(); ++round) {
      backoff_ = refresh_ = false;
      refresh_hint_ = -1;
      todo = Round(todo);
      if (!fatal_.ok()) return fatal_;
      if (todo.empty() || round >= retry.max_rounds || absl::Now() >= deadline) break;
      if (refresh_) router_.MaybeRefreshTopology(refresh_hint_);
      // Redirects alone are resent at once, but not in a tight loop.
      if (backoff_ || round >= 3) {
        absl::SleepFor(std::min(backoff, deadline - absl::Now()));
        backoff = std::min(backoff * 2, retry.max_backoff);
      }
    }
    for (size_t index : todo) {
      if (!answered_[index]) {
        return absl::UnavailableError(absl::StrCat(
            "no reply from ", router_.cluster_ ? "the cluster" : "the server", " at ",
            router_.seed_.Redacted(), " after retries: ", last_transport_error_.message()));
      }
    }
    return std::move(replies_);
  }

 private:
  struct Attempt {
    size_t index;
    bool asking;
  };

  // Sends `todo` grouped by node, reads every reply, returns the commands to send again.
  std::vector<size_t> Round(const std::vector<size_t>& todo) {
    std::vector<std::vector<Attempt>> by_node(router_.nodes_.size());
    for (size_t index : todo) {
      const int ask = ask_node_[index];
      const int node = ask >= 0 ? ask : router_.NodeForSlot(router_.commands_[index].slot);
      by_node[node].push_back({index, ask >= 0});
      ask_node_[index] = -1;
    }
    std::vector<size_t> again;
    std::vector<bool> sent(by_node.size(), false);
    for (size_t node = 0; node < by_node.size(); ++node) {
      if (by_node[node].empty()) continue;
      sent[node] = Send(static_cast<int>(node), by_node[node]);
      if (!sent[node]) Unanswered(by_node[node], 0, &again);
    }
    for (size_t node = 0; node < by_node.size(); ++node) {
      if (sent[node]) Read(static_cast<int>(node), by_node[node], &again);
    }
    return again;
  }

  bool Send(int node, const std::vector<Attempt>& attempts) {
    absl::StatusOr<Connection*> connection = router_.ConnectionTo(node);
    if (!connection.ok() && Classify(connection.status()) != ErrorClass::kTransient) {
      fatal_ = connection.status();  // on_connect refused the node: no retry helps.
      return false;
    }
    if (!connection.ok()) {
      TransportError(node, connection.status());
      return false;
    }
    for (const Attempt& attempt : attempts) {
      if (attempt.asking) (*connection)->Append({"ASKING"});
      const Queued& command = router_.commands_[attempt.index];
      (*connection)
          ->Append(absl::MakeConstSpan(router_.args_.data() + command.first_arg, command.argc));
    }
    absl::Status flushed = (*connection)->Flush();
    if (!flushed.ok()) TransportError(node, flushed);
    return flushed.ok();
  }

  void Read(int node, const std::vector<Attempt>& attempts, std::vector<size_t>* again) {
    Connection& connection = *router_.nodes_[node]->connection;
    for (size_t k = 0; k < attempts.size(); ++k) {
      // ASKING answers +OK; a failure shows in the command's own reply.
      absl::StatusOr<Reply> reply = connection.ReadReply();
      if (attempts[k].asking && reply.ok()) reply = connection.ReadReply();
      if (!reply.ok()) {
        TransportError(node, reply.status());
        Unanswered(attempts, k, again);
        return;
      }
      if (Handle(node, attempts[k].index, std::move(*reply))) again->push_back(attempts[k].index);
    }
  }

  // attempts[from..] got no reply: an earlier error reply of theirs is no longer the outcome.
  void Unanswered(const std::vector<Attempt>& attempts, size_t from, std::vector<size_t>* again) {
    for (size_t k = from; k < attempts.size(); ++k) {
      answered_[attempts[k].index] = false;
      again->push_back(attempts[k].index);
    }
  }

  // Keeps `reply` as command `index`'s answer; true when the command must be sent again.
  bool Handle(int node, size_t index, Reply reply) {
    answered_[index] = true;
    if (!reply.is_error()) {
      replies_[index] = std::move(reply);
      return false;
    }
    const ReplyErrorKind kind = Kind(reply.str());
    bool again = false;
    std::optional<Redirect> redirect;
    if (router_.cluster_)
      redirect = ParseRedirect(reply.str(), router_.nodes_[node]->endpoint.host);
    if (redirect.has_value()) {
      const int target = router_.NodeIndex(redirect->host, redirect->port);
      if (!redirect->ask) {
        ++router_.stats_.moved;
        router_.Observe(RetryReason::kMoved);
        router_.slot_owner_[redirect->slot] = target;
        refresh_ = true;
        refresh_hint_ = target;
      } else {
        ++router_.stats_.ask;
        router_.Observe(RetryReason::kAsk);
        ask_node_[index] = target;
      }
      again = true;
    } else if (RouterResends(kind)) {
      ++router_.stats_.transient;
      router_.Observe(RetryReason::kBusy);
      backoff_ = true;
      refresh_ = refresh_ || kind == ReplyErrorKind::kClusterDown;
      again = true;
    }
    replies_[index] = std::move(reply);
    return again;
  }

  void TransportError(int node, const absl::Status& status) {
    ++router_.stats_.connection_errors;
    router_.Observe(RetryReason::kConnection);
    router_.DropConnection(node);
    last_transport_error_ = status;
    backoff_ = true;
    refresh_ = true;
  }

  Router& router_;
  std::vector<Reply> replies_;
  // replies_[i] holds a reply: the final one, or the error that made command i go again.
  std::vector<bool> answered_;
  // >= 0: command i goes to that node next round, preceded by ASKING.
  std::vector<int> ask_node_;
  bool backoff_ = false;
  bool refresh_ = false;
  // A node that just proved to know the new layout (a MOVED target): asked first on refresh.
  int refresh_hint_ = -1;
  absl::Status last_transport_error_;
  absl::Status fatal_;  // Ends the run: on_connect's verdict on a node.
};

Router::Router(Endpoint seed, ConnectOptions options, RouterRetryPolicy retry, bool cluster,
               OnConnect on_connect)
    : seed_(std::move(seed)),
      options_(std::move(options)),
      retry_(retry),
      cluster_(cluster),
      on_connect_(std::move(on_connect)),
      slot_owner_(cluster ? kClusterSlots : 0, -1) {}

Router::~Router() = default;

absl::StatusOr<std::unique_ptr<Router>> Router::Open(const Endpoint& seed, int db,
                                                     const ConnectOptions& options,
                                                     const RouterRetryPolicy& retry,
                                                     OnConnect on_connect) {
  if (db < 0) return absl::InvalidArgumentError(absl::StrCat("bad db ", db));
  Endpoint endpoint = seed;
  endpoint.db.reset();
  FERRY_ASSIGN_OR_RETURN(Connection connection, Connection::Open(endpoint, options));
  absl::StatusOr<bool> cluster = DetectClusterMode(connection);
  // A user allowed neither INFO nor CLUSTER (a restricted ElastiCache user) is taken for a
  // standalone server's: were it a cluster, its MOVED replies would say so.
  if (!cluster.ok() && cluster.status().code() == absl::StatusCode::kPermissionDenied) {
    cluster = false;
  }
  if (!cluster.ok()) return Annotate(cluster.status(), seed.Redacted());
  if (*cluster && db != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        seed.Redacted(), " is a Redis Cluster, which has only db 0; cannot use db ", db));
  }
  if (!*cluster && db != 0) {
    FERRY_RETURN_IF_ERROR(Annotate(connection.Select(db), seed.Redacted()));
    endpoint.db = db;
  }
  if (on_connect) FERRY_RETURN_IF_ERROR(on_connect(connection));
  std::unique_ptr<Router> router(
      new Router(endpoint, options, retry, *cluster, std::move(on_connect)));
  router->nodes_.push_back(std::make_unique<Node>(Node{endpoint, std::move(connection)}));
  if (*cluster) {
    absl::StatusOr<ClusterTopology> topology = DiscoverTopology(*router->nodes_[0]->connection);
    if (!topology.ok()) return Annotate(topology.status(), seed.Redacted());
    FERRY_RETURN_IF_ERROR(Annotate(router->ApplyTopology(*std::move(topology)), seed.Redacted()));
    router->last_refresh_ = absl::Now();
  }
  return router;
}

size_t KeyArgument(absl::Span<const absl::string_view> argv) {
  // Container commands name a subcommand first: XGROUP CREATE key, XINFO STREAM key, MEMORY
  // USAGE key, OBJECT ENCODING key.
  if (argv.size() > 2) {
    for (absl::string_view container : {"XGROUP", "XINFO", "MEMORY", "OBJECT"}) {
      if (absl::EqualsIgnoreCase(argv[0], container)) return 2;
    }
  }
  return 1;
}

void Router::Add(absl::Span<const absl::string_view> argv) {
  // CRC16 only matters with a slot map.
  const size_t key = KeyArgument(argv);
  const int slot = cluster_ && argv.size() > key ? KeySlot(argv[key]) : 0;
  commands_.push_back({args_.size(), argv.size(), slot});
  args_.insert(args_.end(), argv.begin(), argv.end());
}

absl::StatusOr<std::vector<Reply>> Router::Execute() {
  absl::StatusOr<std::vector<Reply>> replies = std::vector<Reply>();
  if (!commands_.empty()) {
    absl::Status allowed = before_execute_ ? before_execute_() : absl::OkStatus();
    if (allowed.ok()) {
      replies = Run(*this).Go();
    } else {
      replies = std::move(allowed);
    }
  }
  commands_.clear();
  args_.clear();
  return replies;
}

absl::Status Router::ApplyTopology(ClusterTopology topology) {
  // Slot owners as the topology has them, as indices in nodes_.
  std::vector<int> owner(kClusterSlots, -1);
  std::map<const ClusterNode*, int> index;
  const std::vector<const ClusterNode*> table = topology.OwnerTable();
  for (int slot = 0; slot < kClusterSlots; ++slot) {
    const ClusterNode* node = table[slot];
    if (node == nullptr) continue;
    auto [it, added] = index.emplace(node, 0);
    if (added) it->second = NodeIndex(node->host, node->port);
    owner[slot] = it->second;
  }
  const size_t primaries = index.size();
  // A node that was just reset or has not joined yet knows no slots: its view is useless.
  if (primaries == 0) return absl::FailedPreconditionError("the node knows no slot owners");
  slot_owner_ = std::move(owner);
  primaries_ = primaries;
  topology_ = std::move(topology);
  return absl::OkStatus();
}

absl::Status Router::RefreshTopology(int preferred_node) {
  last_refresh_ = absl::Now();
  ++stats_.refreshes;
  // The preferred node, then the nodes already connected (a dead host can cost a whole connect
  // timeout), then the rest.
  std::vector<int> order;
  if (preferred_node >= 0) order.push_back(preferred_node);
  for (bool connected : {true, false}) {
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i]->connection.has_value() == connected && static_cast<int>(i) != preferred_node) {
        order.push_back(static_cast<int>(i));
      }
    }
  }
  absl::Status last = absl::UnavailableError("no cluster node known");
  for (int node : order) {
    absl::StatusOr<Connection*> connection = ConnectionTo(node);
    if (!connection.ok()) {
      last = connection.status();
      continue;
    }
    absl::StatusOr<ClusterTopology> topology = DiscoverTopology(**connection);
    if (topology.ok()) {
      last = ApplyTopology(*std::move(topology));
      if (last.ok()) return last;
      continue;
    }
    if ((*connection)->broken()) DropConnection(node);
    last = topology.status();
  }
  return last;
}

void Router::MaybeRefreshTopology(int preferred_node) {
  if (!cluster_) return;
  if (last_refresh_.has_value() && absl::Now() - *last_refresh_ < retry_.min_refresh_interval) {
    return;
  }
  absl::Status status = RefreshTopology(preferred_node);
  // Not fatal: the next round retries with the slot map as MOVED replies left it.
  if (!status.ok()) FERRY_LOG(Debug) << "cluster topology refresh failed: " << status;
}

int Router::NodeIndex(const std::string& host, int port) {
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const Endpoint& endpoint = nodes_[i]->endpoint;
    if (endpoint.host == host && endpoint.port == port) return static_cast<int>(i);
  }
  ClusterNode node;
  node.host = host;
  node.port = port;
  nodes_.push_back(std::make_unique<Node>(Node{NodeEndpoint(seed_, node), std::nullopt}));
  return static_cast<int>(nodes_.size() - 1);
}

int Router::NodeForSlot(int slot) const {
  if (!cluster_) return 0;
  // A slot nobody owns (the cluster is down or being changed): any node answers with a
  // redirect or CLUSTERDOWN.
  const int owner = slot_owner_[slot];
  return owner >= 0 ? owner : 0;
}

absl::StatusOr<Connection*> Router::ConnectionTo(int node) {
  std::optional<Connection>& connection = nodes_[node]->connection;
  if (connection.has_value() && !connection->broken() && connection->pending() == 0) {
    return &*connection;
  }
  connection.reset();
  FERRY_ASSIGN_OR_RETURN(Connection opened, Connection::Open(nodes_[node]->endpoint, options_));
  if (on_connect_) FERRY_RETURN_IF_ERROR(on_connect_(opened));
  connection.emplace(std::move(opened));
  return &*connection;
}

void Router::DropConnection(int node) { nodes_[node]->connection.reset(); }

Connection* Router::IdleConnection(const std::string& address) {
  for (const std::unique_ptr<Node>& node : nodes_) {
    if (node->endpoint.Address() != address) continue;
    std::optional<Connection>& connection = node->connection;
    if (connection.has_value() && !connection->broken() && connection->pending() == 0) {
      return &*connection;
    }
    return nullptr;
  }
  return nullptr;
}

}  // namespace ferry::redis
