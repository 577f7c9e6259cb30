#pragma once

// The simulated agents of ferry-fleet-sim (bench/fleet_sim.cc): N real AgentHub streams to one
// controller on gRPC's callback API (no thread per stream). Each agent registers with `slots`,
// takes leases, reports a Progress checkpoint about once a second per lease (cursor advancing,
// counters growing), heartbeats, finishes each lease after `lease_time` of "copying", hands back
// revoked leases, and reconnects with backoff when its stream ends, as agent/hub_stream.cc does.
// Nothing is copied.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace ferry::bench {

struct FleetOptions {
  std::string address;  // The controller's `host:port`.
  int agents = 100;
  int slots = 8;
  absl::Duration lease_time = absl::Seconds(5);  // Mean "copying" time of a lease (0.5x-1.5x).
  absl::Duration progress_interval = absl::Seconds(1);  // Per lease.
  absl::Duration max_backoff = absl::Seconds(2);        // Reconnects.
};

// Latencies in milliseconds. Thread-safe.
class LatencySamples {
 public:
  void Add(double ms) ABSL_LOCKS_EXCLUDED(mu_);
  // Forgets every sample (the start of a measurement window).
  void Clear() ABSL_LOCKS_EXCLUDED(mu_);
  // The p-th percentile (0..100) of the samples so far; 0 without any.
  double Percentile(double p) ABSL_LOCKS_EXCLUDED(mu_);
  size_t count() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  std::vector<double> ms_ ABSL_GUARDED_BY(mu_);
};

// Counted by every agent; read by the report.
struct FleetStats {
  std::atomic<uint64_t> grants{0};    // Lease messages received.
  std::atomic<uint64_t> acks{0};      // Ack messages received.
  std::atomic<uint64_t> progress{0};  // Progress reports sent.
  std::atomic<uint64_t> finished{0};  // ShardFinished sent.
  std::atomic<uint64_t> revokes{0};   // Revoke messages received.
  std::atomic<uint64_t> streams{0};   // Streams opened (the first and every reconnect).
  std::atomic<uint64_t> stream_errors{0};
  LatencySamples ack_ms;    // Report sent -> its Ack received.
  LatencySamples grant_ms;  // A slot free (registered, or a lease finished) -> a Lease received.
};

// Owns the agents and the thread that drives their timers. Start() and Stop() from one thread;
// the readers from any.
class Fleet {
 public:
  explicit Fleet(FleetOptions options);
  // Stop().
  ~Fleet();
  Fleet(const Fleet&) = delete;
  Fleet& operator=(const Fleet&) = delete;

  // Opens every agent's stream and starts the timers.
  void Start();
  // Cancels every stream and waits until each call is over.
  void Stop();

  // Leases the agents hold now, and agents registered on an open stream.
  int HeldLeases() const;
  int Registered() const;
  FleetStats& stats() { return stats_; }

  class Agent;

 private:
  void TickLoop();

  const FleetOptions options_;
  FleetStats stats_;
  std::vector<std::unique_ptr<Agent>> agents_;
  std::atomic<bool> stop_{false};
  std::thread ticker_;
};

}  // namespace ferry::bench
