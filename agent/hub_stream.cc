#include "agent/hub_stream.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/lease_spec.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/rpc/credentials.h"
#include "common/rpc/status.h"

namespace ferry::agent {
namespace {

namespace pb = ::ferry::v1;

// How often the session looks at its timers (heartbeat, progress, timeouts, shutdown).
constexpr absl::Duration kTick = absl::Milliseconds(100);
// Without a lease timeout from the controller: how long reports may stay unanswered.
constexpr absl::Duration kDefaultAckTimeout = absl::Seconds(30);

}  // namespace

// ------------------------------------------------------------------------------------------
// AckBook

void AckBook::Ack(const std::string& lease_id) {
  auto it = unacked_.find(lease_id);
  if (it != unacked_.end() && --it->second <= 0) unacked_.erase(it);
}

int AckBook::pending(const std::string& lease_id) const {
  auto it = unacked_.find(lease_id);
  return it == unacked_.end() ? 0 : it->second;
}

// ------------------------------------------------------------------------------------------
// The call and its threads.

HubStream::HubStream(const AgentOptions& options, pb::AgentHub::StubInterface* stub,
                     std::function<bool()> shutdown_requested)
    : options_(options),
      stub_(stub),
      shutdown_requested_(std::move(shutdown_requested)),
      heartbeat_interval_(options.heartbeat_interval),
      ack_timeout_(kDefaultAckTimeout),
      acks_(absl::Now()) {}

absl::Status HubStream::Run(bool* registered) {
  if (!options_.token.empty()) {
    // Per call rather than as call credentials: gRPC sends those only over TLS.
    context_.AddMetadata(rpc::kAuthorizationKey, absl::StrCat("Bearer ", options_.token));
  }
  const absl::Time start = absl::Now();
  stream_ = stub_->Connect(&context_);
  {
    absl::MutexLock lock(&mu_);
    pb::AgentMessage message;
    message.mutable_register_agent()->set_name(options_.name);
    message.mutable_register_agent()->set_slots(options_.slots);
    Send(std::move(message));
  }
  std::thread reader([this] { ReadLoop(); });
  std::thread writer([this] { WriteLoop(); });
  const bool clean = Serve(start);
  return Close(clean, reader, writer, registered);
}

bool HubStream::Serve(absl::Time start) {
  for (;;) {
    std::vector<std::unique_ptr<LeaseRunner>> ended;
    bool drained = false;
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(
                               +[](absl::Status* broken) { return !broken->ok(); }, &broken_),
                           kTick);
      const absl::Time now = absl::Now();
      if (!registered_ && now - start > options_.connect_timeout) {
        Break(absl::DeadlineExceededError(absl::StrCat(
            "no answer to Register within ", absl::FormatDuration(options_.connect_timeout))));
      }
      if (!broken_.ok()) return false;
      ended = TakeEnded(/*all=*/false);
      drained = !Tick(now);
    }
    Join(std::move(ended));
    if (drained) return true;
  }
}

absl::Status HubStream::Close(bool clean, std::thread& reader, std::thread& writer,
                              bool* registered) {
  absl::Status why;
  bool cancel_call = false;
  {
    absl::MutexLock lock(&mu_);
    *registered = registered_;
    why = broken_;
    if (clean) {
      // Half-close after the last report; the controller then ends the call.
      close_writes_ = true;
      mu_.AwaitWithTimeout(absl::Condition(&read_done_), options_.drain_timeout);
    }
    // A call the controller ended keeps its status for Finish(); any other is cancelled, which
    // also unblocks the reader and the writer.
    // A failed Write also means the call is over: its status (say, UNAUTHENTICATED) comes from
    // Finish() once the reader sees the end, so it is not cancelled into CANCELLED either.
    cancel_call = !read_done_ && !write_failed_;
    Break(absl::CancelledError("stream closed"));  // From now on nothing is sent or started.
    StopAll(StopReason::kStreamLost);
  }
  if (cancel_call) context_.TryCancel();
  reader.join();
  writer.join();
  std::vector<std::unique_ptr<LeaseRunner>> runs;
  {
    absl::MutexLock lock(&mu_);
    runs = TakeEnded(/*all=*/true);
  }
  Join(std::move(runs));
  const grpc::Status status = stream_->Finish();
  if (clean) return absl::OkStatus();
  if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
    return Annotate(rpc::FromGrpcStatus(status), "stream ended");
  }
  return why;
}

void HubStream::ReadLoop() {
  pb::ControllerMessage message;
  while (stream_->Read(&message)) {
    absl::MutexLock lock(&mu_);
    acks_.Received(absl::Now());
    Handle(message);
  }
  absl::MutexLock lock(&mu_);
  read_done_ = true;
  Break(absl::UnavailableError("the controller closed the stream"));
}

void HubStream::WriteLoop() {
  for (;;) {
    pb::AgentMessage message;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](HubStream* s) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return !s->outbox_.empty() || s->close_writes_ || !s->broken_.ok();
          },
          this));
      if (!broken_.ok()) return;
      if (outbox_.empty()) break;  // close_writes_
      message = std::move(outbox_.front());
      outbox_.pop_front();
    }
    if (!stream_->Write(message)) {
      absl::MutexLock lock(&mu_);
      write_failed_ = true;
      Break(absl::UnavailableError("the stream to the controller broke"));
      return;
    }
  }
  stream_->WritesDone();
}

// ------------------------------------------------------------------------------------------
// Messages from the controller.

void HubStream::Handle(const pb::ControllerMessage& message) {
  switch (message.msg_case()) {
    case pb::ControllerMessage::kRegistered:
      OnRegistered(message.registered());
      break;
    case pb::ControllerMessage::kLease:
      OnLease(message.lease());
      break;
    case pb::ControllerMessage::kAck:
      acks_.Ack(message.ack().lease_id());
      break;
    case pb::ControllerMessage::kRevoke:
      acks_.Forget(message.revoke().lease_id());
      if (LeaseRunner* run = FindActive(message.revoke().lease_id())) {
        FERRY_LOG(Info) << "lease " << run->lease_id() << " revoked (" << message.revoke().reason()
                        << "): stopping at the next batch";
        run->Stop(StopReason::kRevoked);
      }
      break;
    case pb::ControllerMessage::kRateUpdate:
      if (LeaseRunner* run = FindActive(message.rate_update().lease_id())) {
        run->SetRate(message.rate_update().keys_per_second(),
                     message.rate_update().bytes_per_second());
      }
      break;
    case pb::ControllerMessage::kLiveControl:
      if (LeaseRunner* run = FindActive(message.live_control().lease_id())) {
        run->SetLive(message.live_control().apply(), message.live_control().subscription(),
                     message.live_control().cutover_seq());
      }
      break;
    default:
      FERRY_LOG(Debug) << "ignoring an unknown message from the controller";
  }
}

void HubStream::OnRegistered(const pb::ControllerMessage::Registered& registered) {
  registered_ = true;
  agent_id_ = registered.agent_id();
  if (registered.heartbeat_interval_ms() > 0) {
    heartbeat_interval_ = std::min(options_.heartbeat_interval,
                                   absl::Milliseconds(registered.heartbeat_interval_ms()));
  }
  if (registered.lease_timeout_ms() > 0) {
    ack_timeout_ = std::max(absl::Milliseconds(registered.lease_timeout_ms()), absl::Seconds(5));
  }
  if (options_.metrics != nullptr) options_.metrics->SetConnected(true);
  FERRY_LOG(Info) << "registered with the controller at " << options_.controller_address
                  << " as agent " << agent_id_ << " (" << options_.slots << " slots)";
}

void HubStream::OnLease(const pb::ControllerMessage::Lease& lease) {
  if (!broken_.ok()) return;  // The lease dies with the stream.
  if (FindActive(lease.lease_id()) != nullptr) {
    FERRY_LOG(Warning) << "ignoring a second grant of running lease " << lease.lease_id();
    return;
  }
  if (draining_ || ActiveCount() >= options_.slots) {
    RefuseLease(lease);
    return;
  }
  StartLease(lease);
}

void HubStream::RefuseLease(const pb::ControllerMessage::Lease& lease) {
  if (draining_) {
    FERRY_LOG(Info) << "handing back lease " << lease.lease_id() << " at once: shutting down";
  } else {
    FERRY_LOG(Warning) << "handing back lease " << lease.lease_id() << " at once: all "
                       << options_.slots << " slots are busy";
  }
  pb::AgentMessage answer;
  pb::AgentMessage::Returned* returned = answer.mutable_returned();
  returned->set_lease_id(lease.lease_id());
  returned->set_epoch(lease.epoch());
  *returned->mutable_checkpoint() = lease.resume();
  returned->set_draining(draining_);
  Send(std::move(answer));
}

void HubStream::StartLease(const pb::ControllerMessage::Lease& lease) {
  absl::StatusOr<ShardSpec> spec = SpecFromLease(lease);
  if (!spec.ok()) {
    FERRY_LOG_FIELDS(Error, LogLease(lease.job_id(), lease.lease_id()))
        << "lease " << lease.lease_id() << " (job " << lease.job_id()
        << ") is unusable: " << spec.status().message();
    pb::AgentMessage answer;
    pb::AgentMessage::ShardFinished* finished = answer.mutable_finished();
    finished->set_lease_id(lease.lease_id());
    finished->set_epoch(lease.epoch());
    *finished->mutable_checkpoint() = lease.resume();
    finished->set_status_code(static_cast<int>(spec.status().code()));
    finished->set_status_message(std::string(spec.status().message()));
    Send(std::move(answer), lease.lease_id());
    return;
  }
  FERRY_LOG_FIELDS(Info, LogLease(lease.job_id(), lease.lease_id()))
      << "starting " << DescribeLease(lease, *spec);
  LeaseRunner::Grant grant;
  grant.lease_id = lease.lease_id();
  grant.epoch = lease.epoch();
  grant.spec = *std::move(spec);
  grant.copy = CopyOptionsFromLease(options_.copy, lease);
  grant.resume = CheckpointFromProto(lease.resume());
  grant.keys_per_second = lease.keys_per_second();
  grant.bytes_per_second = lease.bytes_per_second();
  grant.job_id = lease.job_id();
  grant.metrics = options_.metrics;
  LeaseRunner* run = runs_.emplace_back(std::make_unique<LeaseRunner>(std::move(grant))).get();
  run->Start([this](LeaseRunner* ended, const absl::Status& status) { OnLeaseEnd(ended, status); });
}

void HubStream::OnLeaseEnd(LeaseRunner* run, const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  SendReports(*run, run->EndReports(status));
  run->MarkEnded();
}

LeaseRunner* HubStream::FindActive(const std::string& lease_id) {
  for (auto& run : runs_) {
    if (run->lease_id() == lease_id && !run->ended()) return run.get();
  }
  return nullptr;
}

int HubStream::ActiveCount() {
  // A live job's watch lease waits on its subscription most of the time: it takes no slot (the
  // controller does not count it either).
  return static_cast<int>(std::count_if(
      runs_.begin(), runs_.end(), [](const auto& run) { return run->active() && !run->watch(); }));
}

// ------------------------------------------------------------------------------------------
// Timers and messages to the controller.

bool HubStream::Tick(absl::Time now) {
  if (acks_.Overdue(now, ack_timeout_)) {
    Break(absl::DeadlineExceededError(absl::StrCat("the controller has not answered for ",
                                                   absl::FormatDuration(acks_.silence(now)))));
    return true;
  }
  if (now >= next_heartbeat_) {
    pb::AgentMessage message;
    message.mutable_heartbeat();
    Send(std::move(message));
    next_heartbeat_ = now + heartbeat_interval_;
  }
  if (now >= next_progress_) {
    for (auto& run : runs_) {
      if (run->active()) SendReports(*run, run->TakeProgress());
    }
    next_progress_ = now + options_.progress_interval;
  }
  if (!draining_ && shutdown_requested_()) {
    draining_ = true;
    drain_deadline_ = now + options_.drain_timeout;
    FERRY_LOG(Info) << "shutting down: handing back " << ActiveCount() << " running shard(s)";
    StopAll(StopReason::kDrain);
  }
  // A drain ends once every shard stopped and its hand-back was acknowledged (or took too long).
  return !(draining_ && runs_.empty() && (acks_.empty() || now >= drain_deadline_));
}

void HubStream::Send(pb::AgentMessage message, const std::string& ack_lease_id) {
  if (!broken_.ok()) return;
  if (!ack_lease_id.empty()) acks_.Expect(ack_lease_id);
  outbox_.push_back(std::move(message));
}

void HubStream::SendReports(const LeaseRunner& run, std::vector<LeaseReport> reports) {
  for (LeaseReport& report : reports) {
    Send(std::move(report.message), report.expects_ack ? run.lease_id() : "");
  }
}

void HubStream::StopAll(StopReason reason) {
  for (auto& run : runs_) run->Stop(reason);
}

void HubStream::Break(absl::Status why) {
  if (broken_.ok()) broken_ = std::move(why);
}

std::vector<std::unique_ptr<LeaseRunner>> HubStream::TakeEnded(bool all) {
  std::vector<std::unique_ptr<LeaseRunner>> taken;
  auto keep = runs_.begin();
  for (auto& run : runs_) {
    if (all || run->ended()) {
      taken.push_back(std::move(run));
    } else {
      *keep++ = std::move(run);
    }
  }
  runs_.erase(keep, runs_.end());
  return taken;
}

void HubStream::Join(std::vector<std::unique_ptr<LeaseRunner>> runs) {
  for (auto& run : runs) run->Join();
}

}  // namespace ferry::agent
