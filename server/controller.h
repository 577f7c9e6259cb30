#pragma once

// The controller as a library: job store, scheduler, planning, and the gRPC server (Controller
// and AgentHub services, health, reflection). Used by ferry-controller and embedded in
// `ferry migrate`.

#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "ferry/v1/ferry.pb.h"
#include "server/plan_retry.h"
#include "server/plan_types.h"

namespace grpc {
class Channel;
class Server;
}  // namespace grpc

namespace ferry::metrics {
class MetricsServer;
class Registry;
}  // namespace ferry::metrics

namespace ferry::server {

class AgentHubServiceImpl;
class ControllerServiceImpl;
class JobStore;
class Scheduler;
class WorkQueue;

struct ControllerOptions {
  // gRPC listen address (`host:port`, port 0 picks one); empty serves only InProcessChannel().
  std::string listen = "127.0.0.1:7420";
  // The SQLite state file; created with mode 0600.
  std::string state_path = "./ferry-state.db";
  // PEM certificate chain and key: TLS when both are set.
  std::string tls_cert;
  std::string tls_key;
  // Bearer token every call must carry (the token itself, not a file); empty means none.
  std::string token;
  // Allows a non-loopback listen address without TLS and a token (warned about).
  bool insecure = false;
  // Told to agents; a lease dies after lease_timeout without a message from its agent.
  absl::Duration heartbeat_interval = absl::Seconds(1);
  absl::Duration lease_timeout = absl::Seconds(15);
  // Serves Prometheus metrics on http(s)://ADDR/metrics when set (server/metrics.h). Same
  // rule as `listen`: a non-loopback address needs TLS (tls_cert, tls_key) or `insecure`.
  std::string metrics_listen;
  // Planning that fails with a transient error (server/plan_retry.h: a source or target
  // unreachable, stopped, loading, failing over) is tried again, the job PENDING and saying why
  // (Job.planning_retry), with waits from plan_retry_backoff doubling up to 15 s, until
  // plan_retry_budget after its first attempt; then it fails with the last error. Zero: the
  // first error fails the job, as a permanent one always does.
  absl::Duration plan_retry_budget = absl::Seconds(60);
  absl::Duration plan_retry_backoff = absl::Seconds(1);
};

// Start() from any thread; Shutdown() and Wait() from any thread but a signal handler.
class Controller {
 public:
  // Opens the state, resumes every job in it, and starts serving. `planner` must outlive the
  // controller. FAILED_PRECONDITION when a non-loopback address lacks TLS and a token (and
  // `insecure` is not set); UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<Controller>> Start(ControllerOptions options,
                                                           Planner* planner);
  // Shutdown() and Wait().
  ~Controller();
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  // The bound port; 0 without a listen address.
  int port() const { return port_; }
  // The bound metrics port; 0 without options.metrics_listen.
  int metrics_port() const;
  // A channel to this controller that needs no network and carries the token.
  std::shared_ptr<grpc::Channel> InProcessChannel();
  // Stops serving (in-flight calls get a short grace period), finishes queued work, and
  // returns. Idempotent.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);
  // Blocks until Shutdown() has finished.
  void Wait();

 private:
  explicit Controller(ControllerOptions options, Planner* planner);
  absl::Status Init();
  // Queues planning for every job that needs it and is not queued or waiting for a retry yet.
  void PlanPending() ABSL_LOCKS_EXCLUDED(mu_);
  // One planning attempt, on planning_. A transient error schedules the next attempt
  // (ScheduleRetry) rather than sleeping here, where other jobs wait their turn.
  void PlanJob(const std::string& job_id) ABSL_LOCKS_EXCLUDED(mu_);
  // After an attempt that began at `start` failed: true when another attempt is due later
  // (the job stays in planning_queued_); false when the job must fail, with `context` for
  // FailPlanning.
  bool ScheduleRetry(const std::string& job_id, const ferry::v1::JobSpec& spec,
                     const absl::Status& error, absl::Time start, std::string* context)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The job is planned, failed or no longer needs planning: PlanPending may queue it again.
  void EndPlanning(const std::string& job_id) ABSL_LOCKS_EXCLUDED(mu_);
  // Expires leases every period and posts planning retries when they are due.
  void TimerLoop() ABSL_LOCKS_EXCLUDED(mu_);
  // Sleeps until `deadline`, the first planning retry due, a new retry or Shutdown(). False once
  // shutting down.
  bool WaitForTimers(absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);
  // The jobs whose retry is due at `now` (they are queued again).
  std::vector<std::string> TakeDueRetries(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

  const ControllerOptions options_;
  Planner* const planner_;
  int port_ = 0;

  std::unique_ptr<metrics::Registry> metrics_;
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<WorkQueue> api_pool_;      // Unary Controller calls.
  std::unique_ptr<WorkQueue> agent_worker_;  // Agent messages, one at a time, in order.
  std::unique_ptr<WorkQueue> agent_writes_;  // Starts writes to agents, off agent_worker_.
  std::unique_ptr<WorkQueue> planning_;      // One job at a time.
  std::unique_ptr<ControllerServiceImpl> controller_service_;
  std::unique_ptr<AgentHubServiceImpl> agent_hub_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<metrics::MetricsServer> metrics_server_;  // Reads scheduler_.
  std::thread timer_thread_;                                // TimerLoop.

  absl::Mutex mu_;
  // Jobs posted to planning_, being planned, or waiting for a retry (in plan_retries_ too).
  std::set<std::string> planning_queued_ ABSL_GUARDED_BY(mu_);
  // Jobs whose planning met a transient error in this process; erased by EndPlanning.
  std::map<std::string, PlanRetry> plan_retries_ ABSL_GUARDED_BY(mu_);
  bool retries_changed_ ABSL_GUARDED_BY(mu_) = false;  // Wakes WaitForTimers.
  absl::BitGen random_ ABSL_GUARDED_BY(mu_);           // Backoff jitter.
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  absl::Notification shutdown_done_;
};

}  // namespace ferry::server
