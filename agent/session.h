#pragma once

// ferry-agent's side of the AgentHub stream: registers with the controller, runs the shards it
// leases (CopyShard, one thread each), reports progress and results, and reconnects when the
// controller is away. DESIGN.md, sections Lease and Agent. Agent (session.cc) is the
// reconnect loop; one stream's protocol is HubStream (hub_stream.h); one lease's thread and
// reports are LeaseRunner (lease_runner.h).

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/copier.h"

namespace grpc {
class Channel;
}  // namespace grpc

namespace ferry::agent {

class AgentMetrics;

struct AgentOptions {
  // `host:port` of the controller's gRPC port.
  std::string controller_address;
  // Shards run at once (> 0).
  int slots = 2;
  // Name shown by ListAgents; empty means `hostname:pid`.
  std::string name;
  // Bearer token sent as `authorization: Bearer <token>` metadata on the stream, over any
  // channel (an injected one too: do not also give that channel a token interceptor); empty
  // sends none.
  std::string token;
  // PEM bundle trusted for the controller's certificate; setting it implies `tls`. Empty with
  // `tls` means the system's default trust store.
  std::string tls_ca_file;
  bool tls = false;
  // Defaults for each shard; a lease's batch size (when > 0), conflict policy and dry-run flag
  // replace the ones here.
  CopyOptions copy;
  // Longest gap between two messages to the controller (the controller may ask for less).
  absl::Duration heartbeat_interval = absl::Seconds(1);
  // How often each running shard's latest checkpoint is reported.
  absl::Duration progress_interval = absl::Seconds(1);
  // Longest wait between two connection attempts.
  absl::Duration max_backoff = absl::Seconds(10);
  // Deadline of one connection attempt: channel READY, then the `Registered` answer.
  absl::Duration connect_timeout = absl::Seconds(10);
  // On Shutdown(): how long to wait for the controller to acknowledge the returned shards, then
  // for it to close the stream.
  absl::Duration drain_timeout = absl::Seconds(10);
  // Where leases and the connection are counted (agent/metrics.h); null: nowhere. Outlives
  // the Agent.
  AgentMetrics* metrics = nullptr;
};

// One agent process's connection to its controller. Create() from any thread; Run() on one
// thread; Shutdown() from any thread (a signal-handling thread, for instance).
class Agent {
 public:
  // Checks what Create() would refuse: an empty address, slots < 1, an unreadable CA file.
  // The message is meant for the operator (it never contains the token).
  static absl::Status ValidateOptions(const AgentOptions& options);

  // `channel` null: a channel to `options.controller_address` is built from the options (TLS,
  // reconnect backoff). Non-null (an in-process channel of an embedded controller, for
  // instance): used as is, and `options.tls*` are ignored. Returns null, after logging why,
  // when ValidateOptions() fails.
  static std::unique_ptr<Agent> Create(AgentOptions options,
                                       std::shared_ptr<grpc::Channel> channel = nullptr);

  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Connects, registers and serves leases; reconnects with exponential backoff when the stream
  // breaks or the controller is away. Returns OK once Shutdown() was called and the running
  // shards were drained, or, without retrying, the UNAUTHENTICATED or PERMISSION_DENIED status
  // of a controller that refused this agent (a wrong token does not fix itself).
  absl::Status Run() ABSL_LOCKS_EXCLUDED(mu_);

  // Asks Run() to drain: running shards stop at a batch boundary and are handed back with
  // their checkpoints, then the stream is closed. Returns at once; idempotent.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  Agent(AgentOptions options, std::shared_ptr<grpc::Channel> channel, bool own_channel);

  // Sleeps `duration` or until Shutdown(); returns whether shutdown was requested.
  bool SleepUnlessShutdown(absl::Duration duration) ABSL_LOCKS_EXCLUDED(mu_);
  bool shutdown_requested() ABSL_LOCKS_EXCLUDED(mu_);
  // Waits, within options_.connect_timeout, for the channel built here to be READY or to
  // fail.
  absl::Status WaitForChannel() ABSL_LOCKS_EXCLUDED(mu_);

  const AgentOptions options_;
  const std::shared_ptr<grpc::Channel> channel_;
  // The channel was built here (so its connectivity state can be waited on; an in-process
  // channel has none).
  const bool own_channel_;

  absl::Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace ferry::agent
