#include "bench/fleet_agents.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <deque>
#include <map>
#include <random>
#include <utility>

#include "ferry/v1/ferry.grpc.pb.h"

namespace ferry::bench {
namespace {

namespace pb = ::ferry::v1;

constexpr absl::Duration kTick = absl::Milliseconds(50);
constexpr absl::Duration kFirstBackoff = absl::Milliseconds(100);
// Keys one Progress report says were scanned and copied (its counters grow by as much).
constexpr uint64_t kKeysPerReport = 1000;
constexpr uint64_t kBytesPerKey = 100;

double MillisSince(absl::Time then, absl::Time now) {
  return absl::ToDoubleMilliseconds(now - then);
}

struct SimLease {
  std::string id;
  uint64_t epoch = 0;
  pb::Checkpoint checkpoint;  // From the lease's resume point on.
  absl::Time next_report;
  absl::Time finish_at;
};

}  // namespace

void LatencySamples::Add(double ms) {
  absl::MutexLock lock(&mu_);
  ms_.push_back(ms);
}

void LatencySamples::Clear() {
  absl::MutexLock lock(&mu_);
  ms_.clear();
}

double LatencySamples::Percentile(double p) {
  absl::MutexLock lock(&mu_);
  if (ms_.empty()) return 0;
  std::vector<double> sorted = ms_;
  const size_t index = std::min(
      sorted.size() - 1, static_cast<size_t>(p / 100.0 * static_cast<double>(sorted.size())));
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<long>(index), sorted.end());
  return sorted[index];
}

size_t LatencySamples::count() {
  absl::MutexLock lock(&mu_);
  return ms_.size();
}

// One stream. Deletes itself in OnDone, after telling its agent. At most one read and one write
// in flight; writes queue and chain from OnWriteDone. A hold keeps the call open until the
// read side ended, so that no write starts after the call finished.
class Call final : public grpc::ClientBidiReactor<pb::AgentMessage, pb::ControllerMessage> {
 public:
  Call(Fleet::Agent* agent, pb::AgentHub::Stub* stub);
  void Send(pb::AgentMessage message) ABSL_LOCKS_EXCLUDED(mu_);
  void Cancel() { context_.TryCancel(); }

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  Fleet::Agent* const agent_;
  grpc::ClientContext context_;
  pb::ControllerMessage in_;
  absl::Mutex mu_;
  std::deque<pb::AgentMessage> queue_ ABSL_GUARDED_BY(mu_);  // front() is being written.
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

class Fleet::Agent {
 public:
  Agent(const FleetOptions& options, FleetStats* stats, int index)
      : options_(options), stats_(stats), rng_(static_cast<uint32_t>(index) * 7919u + 1) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // A TCP connection per agent.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 250);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
                static_cast<int>(absl::ToInt64Milliseconds(options.max_backoff)));
    channel_ = grpc::CreateCustomChannel(options.address, grpc::InsecureChannelCredentials(), args);
    stub_ = pb::AgentHub::NewStub(channel_);
    name_ = "sim-" + std::to_string(index);
  }

  // On the ticker thread.
  void Tick(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (call_ == nullptr) {
      if (!stopping_ && now >= reconnect_at_) ConnectLocked(now);
      return;
    }
    if (!registered_) return;
    for (auto it = leases_.begin(); it != leases_.end();) {
      SimLease& lease = it->second;
      if (now >= lease.finish_at) {
        SendFinishedLocked(lease, now);
        free_since_.push_back(now);
        it = leases_.erase(it);
        continue;
      }
      if (now >= lease.next_report) SendProgressLocked(lease, now);
      ++it;
    }
    if (now >= next_heartbeat_) {
      pb::AgentMessage message;
      message.mutable_heartbeat();
      call_->Send(std::move(message));
      next_heartbeat_ = now + heartbeat_;
    }
  }

  void Cancel() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (call_ != nullptr) call_->Cancel();
  }

  void WaitClosed() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](Call** call) { return *call == nullptr; }, &call_));
  }

  int held() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(leases_.size());
  }
  bool registered() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return registered_;
  }

  // From the call's reactions.
  void OnMessage(const pb::ControllerMessage& message) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    const absl::Time now = absl::Now();
    switch (message.msg_case()) {
      case pb::ControllerMessage::kRegistered:
        registered_ = true;
        heartbeat_ =
            absl::Milliseconds(std::max(100, message.registered().heartbeat_interval_ms()));
        next_heartbeat_ = now + heartbeat_;
        for (int i = 0; i < options_.slots; ++i) free_since_.push_back(register_sent_);
        break;
      case pb::ControllerMessage::kLease:
        OnLeaseLocked(message.lease(), now);
        break;
      case pb::ControllerMessage::kAck:
        OnAckLocked(message.ack().lease_id(), now);
        break;
      case pb::ControllerMessage::kRevoke:
        OnRevokeLocked(message.revoke().lease_id(), now);
        break;
      default:
        break;  // Rate shares and live controls change nothing here.
    }
  }

  void OnCallDone(const grpc::Status& status) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (!status.ok() && !stopping_) stats_->stream_errors++;
    call_ = nullptr;
    registered_ = false;
    leases_.clear();  // A new stream starts with nothing (the controller took them back).
    unacked_.clear();
    free_since_.clear();
    const absl::Duration jitter =
        absl::Milliseconds(std::uniform_int_distribution<int>(0, 100)(rng_));
    reconnect_at_ = absl::Now() + backoff_ + jitter;
    backoff_ = std::min(backoff_ * 2, options_.max_backoff);
  }

 private:
  void ConnectLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    stats_->streams++;
    call_ = new Call(this, stub_.get());
    register_sent_ = now;
    pb::AgentMessage message;
    message.mutable_register_agent()->set_name(name_);
    message.mutable_register_agent()->set_slots(options_.slots);
    call_->Send(std::move(message));
  }

  void OnLeaseLocked(const pb::ControllerMessage::Lease& grant, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    stats_->grants++;
    backoff_ = kFirstBackoff;  // The stream works.
    if (!free_since_.empty()) {
      stats_->grant_ms.Add(MillisSince(free_since_.front(), now));
      free_since_.pop_front();
    }
    SimLease& lease = leases_[grant.lease_id()];
    lease.id = grant.lease_id();
    lease.epoch = grant.epoch();
    lease.checkpoint = grant.resume();
    lease.checkpoint.set_run_id("fleet-sim");
    // Spread over the second so that reports do not come in waves.
    const int spread = std::uniform_int_distribution<int>(0, 999)(rng_);
    lease.next_report = now + options_.progress_interval * (0.5 + spread / 1000.0);
    // Shards take unequal times: 0.5x to 1.5x the lease time, so that a fleet that started
    // at once does not finish in waves for long.
    const int length = std::uniform_int_distribution<int>(0, 999)(rng_);
    lease.finish_at = now + options_.lease_time * (0.5 + length / 1000.0);
  }

  void SendProgressLocked(SimLease& lease, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    pb::Checkpoint& checkpoint = lease.checkpoint;
    checkpoint.set_cursor(checkpoint.cursor() + 4096 + rng_() % 1024);
    pb::Counters& counters = *checkpoint.mutable_counters();
    counters.set_scanned(counters.scanned() + kKeysPerReport);
    counters.set_copied(counters.copied() + kKeysPerReport);
    counters.set_bytes(counters.bytes() + kKeysPerReport * kBytesPerKey);
    pb::AgentMessage message;
    pb::AgentMessage::Progress& progress = *message.mutable_progress();
    progress.set_lease_id(lease.id);
    progress.set_epoch(lease.epoch);
    *progress.mutable_checkpoint() = checkpoint;
    unacked_[lease.id].push_back(now);
    call_->Send(std::move(message));
    stats_->progress++;
    lease.next_report = now + options_.progress_interval;
  }

  void SendFinishedLocked(SimLease& lease, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    pb::AgentMessage message;
    pb::AgentMessage::ShardFinished& finished = *message.mutable_finished();
    finished.set_lease_id(lease.id);
    finished.set_epoch(lease.epoch);
    *finished.mutable_checkpoint() = lease.checkpoint;
    finished.mutable_checkpoint()->set_done(true);
    finished.set_status_code(0);
    unacked_[lease.id].push_back(now);
    call_->Send(std::move(message));
    stats_->finished++;
  }

  void OnAckLocked(const std::string& lease_id, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    stats_->acks++;
    auto it = unacked_.find(lease_id);
    if (it == unacked_.end()) return;
    stats_->ack_ms.Add(MillisSince(it->second.front(), now));
    it->second.pop_front();
    if (it->second.empty()) unacked_.erase(it);
  }

  void OnRevokeLocked(const std::string& lease_id, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    stats_->revokes++;
    auto it = leases_.find(lease_id);
    if (it == leases_.end()) return;  // Not running (any more): ignored, as agents do.
    pb::AgentMessage message;
    pb::AgentMessage::Returned& returned = *message.mutable_returned();
    returned.set_lease_id(lease_id);
    returned.set_epoch(it->second.epoch);
    *returned.mutable_checkpoint() = it->second.checkpoint;
    unacked_[lease_id].push_back(now);
    call_->Send(std::move(message));
    free_since_.push_back(now);
    leases_.erase(it);
  }

  const FleetOptions& options_;
  FleetStats* const stats_;
  std::string name_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::AgentHub::Stub> stub_;

  mutable absl::Mutex mu_;
  std::mt19937 rng_ ABSL_GUARDED_BY(mu_);
  Call* call_ ABSL_GUARDED_BY(mu_) = nullptr;  // Deletes itself; nulled in OnCallDone.
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool registered_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time register_sent_ ABSL_GUARDED_BY(mu_);
  absl::Time reconnect_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Duration backoff_ ABSL_GUARDED_BY(mu_) = kFirstBackoff;
  absl::Duration heartbeat_ ABSL_GUARDED_BY(mu_) = absl::Seconds(1);
  absl::Time next_heartbeat_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, SimLease> leases_ ABSL_GUARDED_BY(mu_);
  // Send times of the reports not acknowledged yet, per lease, oldest first.
  std::map<std::string, std::deque<absl::Time>> unacked_ ABSL_GUARDED_BY(mu_);
  // Since when each free slot has waited for a lease, oldest first.
  std::deque<absl::Time> free_since_ ABSL_GUARDED_BY(mu_);
};

Call::Call(Fleet::Agent* agent, pb::AgentHub::Stub* stub) : agent_(agent) {
  stub->async()->Connect(&context_, this);
  AddHold();
  StartRead(&in_);
  StartCall();
}

void Call::Send(pb::AgentMessage message) {
  absl::MutexLock lock(&mu_);
  if (closed_) return;
  queue_.push_back(std::move(message));
  if (!writing_) {
    writing_ = true;
    StartWrite(&queue_.front());
  }
}

void Call::OnWriteDone(bool ok) {
  absl::MutexLock lock(&mu_);
  queue_.pop_front();
  if (!ok) {
    queue_.clear();
    writing_ = false;
    closed_ = true;
    return;
  }
  if (queue_.empty()) {
    writing_ = false;
  } else {
    StartWrite(&queue_.front());
  }
}

void Call::OnReadDone(bool ok) {
  if (ok) {
    agent_->OnMessage(in_);
    StartRead(&in_);
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;  // No write starts after this: the hold can go.
  }
  RemoveHold();
}

void Call::OnDone(const grpc::Status& status) {
  agent_->OnCallDone(status);
  delete this;
}

Fleet::Fleet(FleetOptions options) : options_(std::move(options)) {}

Fleet::~Fleet() { Stop(); }

void Fleet::Start() {
  for (int i = 0; i < options_.agents; ++i) {
    agents_.push_back(std::make_unique<Agent>(options_, &stats_, i));
  }
  ticker_ = std::thread([this] { TickLoop(); });
}

void Fleet::Stop() {
  if (!ticker_.joinable()) return;
  stop_ = true;
  ticker_.join();
  for (auto& agent : agents_) agent->Cancel();
  for (auto& agent : agents_) agent->WaitClosed();
}

void Fleet::TickLoop() {
  while (!stop_) {
    const absl::Time start = absl::Now();
    // Each agent's own clock reading: a report's send time is when it is handed to its stream,
    // not when the round over every agent began (a round of 1,000 agents takes a while, and
    // stamping them all with its start counted that time in every ack's latency).
    for (auto& agent : agents_) agent->Tick(absl::Now());
    absl::SleepFor(kTick - (absl::Now() - start));
  }
}

int Fleet::HeldLeases() const {
  int held = 0;
  for (const auto& agent : agents_) held += agent->held();
  return held;
}

int Fleet::Registered() const {
  int n = 0;
  for (const auto& agent : agents_) n += agent->registered() ? 1 : 0;
  return n;
}

}  // namespace ferry::bench
