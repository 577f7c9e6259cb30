#pragma once

// Sends keyed commands to a standalone server or a Redis Cluster and returns the replies in the
// order the commands were added: the write side of a copy (RESTORE ... REPLACE, DEL) and any
// keyed read. DESIGN.md, "Copying a shard".

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/redis/cluster.h"
#include "common/redis/connection.h"
#include "common/redis/endpoint.h"

namespace ferry::redis {

// How long Execute keeps trying before it gives up on a command.
struct RouterRetryPolicy {
  // Rounds of resending (after MOVED, ASK, TRYAGAIN, CLUSTERDOWN, LOADING, MASTERDOWN or a lost
  // connection) and the wall time they may take, whichever ends first.
  int max_rounds = 50;
  absl::Duration max_duration = absl::Seconds(10);
  // Before a round that follows a transient error or a lost connection: starts at
  // initial_backoff, doubles, capped at max_backoff.
  absl::Duration initial_backoff = absl::Milliseconds(10);
  absl::Duration max_backoff = absl::Milliseconds(320);
  // Topology refreshes (MOVED, lost connections) are at most this frequent; a MOVED reply also
  // updates its slot at once.
  absl::Duration min_refresh_interval = absl::Milliseconds(100);
};

// What the router did beyond sending each command once; counters since Open. For metrics and
// for tests that must prove a redirect happened.
struct RouterStats {
  uint64_t moved = 0;              // MOVED replies.
  uint64_t ask = 0;                // ASK replies.
  uint64_t transient = 0;          // TRYAGAIN, CLUSTERDOWN, LOADING, MASTERDOWN replies.
  uint64_t connection_errors = 0;  // Connections dropped (or not opened) after a transport error.
  uint64_t refreshes = 0;          // Topology re-discoveries.
};

// Not thread-safe: one thread adds and executes. Every command may be sent more than once (a
// lost connection leaves its fate unknown), so commands must be idempotent: RESTORE ... REPLACE,
// DEL, SET, reads.
// Where a keyed command's key is: argv[2] for XGROUP, XINFO, MEMORY and OBJECT (after their
// subcommand), else argv[1].
size_t KeyArgument(absl::Span<const absl::string_view> argv);

class Router {
 public:
  // Connects to `seed` and detects cluster mode (a user that may run neither INFO nor CLUSTER
  // is taken for a standalone server's). Standalone: every command goes to `db` on the seed.
  // Cluster: `db` must be 0 (INVALID_ARGUMENT otherwise); the slot map comes from DiscoverTopology
  // and connections to the other nodes are opened when first needed, with the seed's credentials
  // and TLS settings (NodeEndpoint).
  // `on_connect`, when set, is called on every connection the router opens, the seed's
  // included, before any command is sent on it; an error it returns that is not transient
  // (errors.h Classify) ends Execute with that error at once (the agent checks there that a
  // target node is still the server process it wrote to).
  using OnConnect = std::function<absl::Status(Connection&)>;
  static absl::StatusOr<std::unique_ptr<Router>> Open(const Endpoint& seed, int db,
                                                      const ConnectOptions& options,
                                                      const RouterRetryPolicy& retry = {},
                                                      OnConnect on_connect = nullptr);

  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;
  ~Router();

  // Queues one command; its key is argv[KeyArgument(argv)] (a command without one goes to any
  // node). Only the views are stored: the bytes must stay valid until Execute returns.
  void Add(absl::Span<const absl::string_view> argv);
  void Add(std::initializer_list<absl::string_view> argv) {
    Add(absl::MakeConstSpan(argv.begin(), argv.size()));
  }
  size_t queued() const { return commands_.size(); }

  // Sends every queued command (cluster: one pipeline per owning primary, all sent before any
  // reply is read) and returns one reply per command, in the order they were added. Error
  // replies are data in their slot; one that was still MOVED/ASK/TRYAGAIN/CLUSTERDOWN when the
  // retry policy ran out is returned as it was. UNAVAILABLE when some command never got a reply
  // (its node stayed unreachable). The queue is empty afterwards, whatever the outcome.
  absl::StatusOr<std::vector<Reply>> Execute();

  // Called at the start of every Execute that has commands: an error it returns is Execute's
  // result, and nothing is sent (the agent stops a shard's writes there once it found that
  // written data may be lost). Null: none.
  using BeforeExecute = std::function<absl::Status()>;
  void set_before_execute(BeforeExecute check) { before_execute_ = std::move(check); }

  // The open connection to `address` (host:port) with nothing in flight, or null: for a
  // caller's own commands between two Executes (the agent's INFO reads of the target nodes it
  // writes to, without a connection of their own). One whose reply was not read, or that broke,
  // is opened again by the next Execute that needs it.
  Connection* IdleConnection(const std::string& address);

  bool cluster() const { return cluster_; }
  // Primaries in the slot map (1 for a standalone server).
  size_t nodes() const { return cluster_ ? primaries_ : 1; }
  const RouterStats& stats() const { return stats_; }
  // The topology last discovered (empty for a standalone server).
  const ClusterTopology& topology() const { return topology_; }

 private:
  struct Node;
  struct Queued {
    size_t first_arg;
    size_t argc;
    int slot;
  };
  class Run;  // The state of one Execute call (router.cc).

  Router(Endpoint seed, ConnectOptions options, RouterRetryPolicy retry, bool cluster,
         OnConnect on_connect);

  absl::Status ApplyTopology(ClusterTopology topology);
  // Re-discovers the topology, asking `preferred_node` (an index in nodes_, or -1) first.
  absl::Status RefreshTopology(int preferred_node);
  void MaybeRefreshTopology(int preferred_node);
  // Index of the node at host:port, added when new.
  int NodeIndex(const std::string& host, int port);
  int NodeForSlot(int slot) const;
  absl::StatusOr<Connection*> ConnectionTo(int node);
  void DropConnection(int node);
  void Observe(RetryReason reason) {
    if (options_.observer != nullptr) options_.observer->Retry(reason);
  }

  const Endpoint seed_;
  const ConnectOptions options_;
  const RouterRetryPolicy retry_;
  const bool cluster_;
  const OnConnect on_connect_;
  BeforeExecute before_execute_;
  std::vector<std::unique_ptr<Node>> nodes_;  // nodes_[0] is the seed.
  std::vector<int> slot_owner_;               // Cluster: slot -> index in nodes_, -1 unknown.
  size_t primaries_ = 0;
  ClusterTopology topology_;
  std::optional<absl::Time> last_refresh_;
  RouterStats stats_;
  std::vector<absl::string_view> args_;  // Views of every queued command's arguments.
  std::vector<Queued> commands_;
};

}  // namespace ferry::redis
