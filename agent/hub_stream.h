#pragma once

// One AgentHub.Connect call, the agent's side of the protocol: Register, then Lease, Ack,
// Revoke and RateUpdate from the controller; Heartbeat and each lease's reports (LeaseRunner)
// to it; a drain on shutdown. Agent (agent/session.h) opens one per connection attempt.

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/lease_runner.h"
#include "agent/session.h"
#include "ferry/v1/ferry.grpc.pb.h"

namespace ferry::agent {

// Reports that wait for the controller's Ack, per lease, and when the controller last said
// anything: a controller that owes answers and stays silent is presumed gone. Not
// thread-safe (HubStream's lock).
class AckBook {
 public:
  explicit AckBook(absl::Time now) : last_received_(now) {}

  void Expect(const std::string& lease_id) { ++unacked_[lease_id]; }
  // One report of the lease was answered.
  void Ack(const std::string& lease_id);
  // A revoked lease: the controller may have forgotten it and never answer.
  void Forget(const std::string& lease_id) { unacked_.erase(lease_id); }
  void Received(absl::Time now) { last_received_ = now; }

  bool empty() const { return unacked_.empty(); }
  int pending(const std::string& lease_id) const;
  // Answers are owed and nothing arrived for longer than `timeout`.
  bool Overdue(absl::Time now, absl::Duration timeout) const {
    return !empty() && now - last_received_ > timeout;
  }
  absl::Duration silence(absl::Time now) const { return now - last_received_; }

 private:
  std::map<std::string, int> unacked_;
  absl::Time last_received_;
};

// Connects one AgentHub stream, registers, serves leases until the stream breaks or a drain
// ends, and stops every shard it started before returning. Threads: Run()'s caller keeps the
// timers; one thread reads, one writes (the only one that calls Write, so at most one write is
// in flight); one per shard (LeaseRunner).
class HubStream {
 public:
  // `options` and `stub` outlive this object. `shutdown_requested` is polled on every tick.
  HubStream(const AgentOptions& options, ferry::v1::AgentHub::StubInterface* stub,
            std::function<bool()> shutdown_requested);

  // OK after a drain; otherwise why the stream ended. `registered`: the controller answered.
  absl::Status Run(bool* registered) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Keeps the timers until the stream breaks (false) or a drain ends (true).
  bool Serve(absl::Time start) ABSL_LOCKS_EXCLUDED(mu_);
  // Ends the call (half-close after a drain, cancel otherwise), stops and joins everything.
  absl::Status Close(bool clean, std::thread& reader, std::thread& writer, bool* registered)
      ABSL_LOCKS_EXCLUDED(mu_);
  void ReadLoop() ABSL_LOCKS_EXCLUDED(mu_);
  void WriteLoop() ABSL_LOCKS_EXCLUDED(mu_);

  void Handle(const ferry::v1::ControllerMessage& message) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnRegistered(const ferry::v1::ControllerMessage::Registered& registered)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnLease(const ferry::v1::ControllerMessage::Lease& lease) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Answers a lease that cannot run here (busy, draining, unusable) at once.
  void RefuseLease(const ferry::v1::ControllerMessage::Lease& lease)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartLease(const ferry::v1::ControllerMessage::Lease& lease)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // From a shard's thread once its copy returned.
  void OnLeaseEnd(LeaseRunner* run, const absl::Status& status) ABSL_LOCKS_EXCLUDED(mu_);
  LeaseRunner* FindActive(const std::string& lease_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int ActiveCount() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Heartbeat, progress, timeouts, drain; false when the session should end.
  bool Tick(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Send(ferry::v1::AgentMessage message, const std::string& ack_lease_id = "")
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SendReports(const LeaseRunner& run, std::vector<LeaseReport> reports)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StopAll(StopReason reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Break(absl::Status why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes ended runs; the caller joins their threads without holding mu_.
  std::vector<std::unique_ptr<LeaseRunner>> TakeEnded(bool all) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void Join(std::vector<std::unique_ptr<LeaseRunner>> runs);

  const AgentOptions& options_;
  ferry::v1::AgentHub::StubInterface* const stub_;
  const std::function<bool()> shutdown_requested_;
  grpc::ClientContext context_;
  std::unique_ptr<
      grpc::ClientReaderWriterInterface<ferry::v1::AgentMessage, ferry::v1::ControllerMessage>>
      stream_;

  absl::Mutex mu_;
  std::deque<ferry::v1::AgentMessage> outbox_ ABSL_GUARDED_BY(mu_);
  bool close_writes_ ABSL_GUARDED_BY(mu_) = false;  // Writer: WritesDone once outbox_ is empty.
  absl::Status broken_ ABSL_GUARDED_BY(mu_);        // Not OK once a read or write failed.
  bool read_done_ ABSL_GUARDED_BY(mu_) = false;
  bool write_failed_ ABSL_GUARDED_BY(mu_) = false;  // A Write failed: the call is over.
  bool registered_ ABSL_GUARDED_BY(mu_) = false;
  std::string agent_id_ ABSL_GUARDED_BY(mu_);
  absl::Duration heartbeat_interval_ ABSL_GUARDED_BY(mu_);
  absl::Duration ack_timeout_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<LeaseRunner>> runs_ ABSL_GUARDED_BY(mu_);
  AckBook acks_ ABSL_GUARDED_BY(mu_);
  absl::Time next_heartbeat_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time next_progress_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time drain_deadline_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry::agent
