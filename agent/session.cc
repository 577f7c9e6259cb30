#include "agent/session.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/lease_spec.h"
#include "agent/rate_limiter.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/rpc/credentials.h"
#include "common/rpc/status.h"
#include "ferry/v1/ferry.grpc.pb.h"

namespace ferry::agent {
namespace {

namespace pb = ::ferry::v1;
using FailedKeys = google::protobuf::RepeatedPtrField<pb::FailedKey>;

// How often the session looks at its timers (heartbeat, progress, timeouts, shutdown).
constexpr absl::Duration kTick = absl::Milliseconds(100);
constexpr absl::Duration kInitialBackoff = absl::Milliseconds(250);
// How long a connection attempt may keep failing before the stream is opened anyway, to learn
// gRPC's reason for the failure.
constexpr absl::Duration kConnectFailureGrace = absl::Seconds(1);
// Without a lease timeout from the controller: how long reports may stay unanswered.
constexpr absl::Duration kDefaultAckTimeout = absl::Seconds(30);
// Failed keys per report are cut into messages of about this size (gRPC's default limit on
// received messages is 4 MiB).
constexpr size_t kMaxFailedKeyBytes = 1 << 20;
// Keepalive pings find a dead connection while no report waits for an answer. Not below the
// server's default minimum ping interval (5 min), or the server would answer with GOAWAY.
constexpr int kKeepaliveTimeMs = 310 * 1000;
constexpr int kKeepaliveTimeoutMs = 20 * 1000;

// ------------------------------------------------------------------------------------------
// One stream.

enum class StopReason { kNone, kRevoked, kDrain, kStreamLost };

// A shard running under a lease, on its own thread. The fields below `thread` are guarded by
// the owning Session's mutex.
struct LeaseRun {
  explicit LeaseRun(double keys_per_second) : limiter(keys_per_second) {}

  std::string lease_id;
  uint64_t epoch = 0;
  ShardSpec spec;
  CopyOptions copy;
  Checkpoint resume;
  RateLimiter limiter;
  std::atomic<bool> cancel{false};
  std::thread thread;

  Checkpoint latest;     // The last checkpoint CopyShard wrote (`resume` before the first).
  Checkpoint reported;   // The checkpoint of the last report sent.
  bool changed = false;  // `latest` has not been reported yet.
  std::vector<pb::FailedKey> failed;  // Since the last report.
  StopReason stop = StopReason::kNone;
  bool ended = false;  // CopyShard returned and the result was queued: `thread` can be joined.
};

template <typename Report>
void FillReport(const LeaseRun& run, const Checkpoint& checkpoint, Report* report) {
  report->set_lease_id(run.lease_id);
  report->set_epoch(run.epoch);
  CheckpointToProto(checkpoint, report->mutable_checkpoint());
}

// Connects one AgentHub stream, registers, serves leases until the stream breaks or a drain
// ends, and stops every shard it started before returning. Threads: Run()'s caller keeps the
// timers; one thread reads, one writes (the only one that calls Write, so at most one write is
// in flight); one per shard.
class Session {
 public:
  Session(const AgentOptions& options, const std::shared_ptr<grpc::Channel>& channel,
          std::function<bool()> shutdown_requested)
      : options_(options),
        stub_(pb::AgentHub::NewStub(channel)),
        shutdown_requested_(std::move(shutdown_requested)),
        heartbeat_interval_(options.heartbeat_interval) {}

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
  void RunShard(LeaseRun* run) ABSL_LOCKS_EXCLUDED(mu_);

  void Handle(const pb::ControllerMessage& message) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnRegistered(const pb::ControllerMessage::Registered& registered)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnLease(const pb::ControllerMessage::Lease& lease) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnAck(const pb::ControllerMessage::Ack& ack) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  LeaseRun* FindActive(const std::string& lease_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int ActiveCount() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Heartbeat, progress, timeouts, drain; false when the session should end.
  bool Tick(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReportProgress(LeaseRun& run) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReportEnd(LeaseRun& run, const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The run's failed keys for one report; those beyond the size limit go out first in Progress
  // messages carrying the checkpoint already reported, so no checkpoint passes unreported keys.
  FailedKeys TakeFailedKeys(LeaseRun& run, bool expect_ack) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Send(pb::AgentMessage message, const std::string& ack_lease_id = "")
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StopAll(StopReason reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Break(absl::Status why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes ended runs; the caller joins their threads without holding mu_.
  std::vector<std::unique_ptr<LeaseRun>> TakeEnded(bool all) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void Join(std::vector<std::unique_ptr<LeaseRun>> runs);

  const AgentOptions& options_;
  const std::unique_ptr<pb::AgentHub::Stub> stub_;
  const std::function<bool()> shutdown_requested_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<pb::AgentMessage, pb::ControllerMessage>> stream_;

  absl::Mutex mu_;
  std::deque<pb::AgentMessage> outbox_ ABSL_GUARDED_BY(mu_);
  bool close_writes_ ABSL_GUARDED_BY(mu_) = false;  // Writer: WritesDone once outbox_ is empty.
  absl::Status broken_ ABSL_GUARDED_BY(mu_);        // Not OK once a read or write failed.
  bool read_done_ ABSL_GUARDED_BY(mu_) = false;
  bool registered_ ABSL_GUARDED_BY(mu_) = false;
  std::string agent_id_ ABSL_GUARDED_BY(mu_);
  absl::Duration heartbeat_interval_ ABSL_GUARDED_BY(mu_);
  absl::Duration ack_timeout_ ABSL_GUARDED_BY(mu_) = kDefaultAckTimeout;
  std::vector<std::unique_ptr<LeaseRun>> runs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> unacked_ ABSL_GUARDED_BY(mu_);  // Reports awaiting Ack, per lease.
  absl::Time last_received_ ABSL_GUARDED_BY(mu_) = absl::Now();
  absl::Time next_heartbeat_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time next_progress_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time drain_deadline_ ABSL_GUARDED_BY(mu_);
};

absl::Status Session::Run(bool* registered) {
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

bool Session::Serve(absl::Time start) {
  for (;;) {
    std::vector<std::unique_ptr<LeaseRun>> ended;
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

absl::Status Session::Close(bool clean, std::thread& reader, std::thread& writer,
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
    cancel_call = !read_done_;
    Break(absl::CancelledError("stream closed"));  // From now on nothing is sent or started.
    StopAll(StopReason::kStreamLost);
  }
  if (cancel_call) context_.TryCancel();
  reader.join();
  writer.join();
  std::vector<std::unique_ptr<LeaseRun>> runs;
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

void Session::ReadLoop() {
  pb::ControllerMessage message;
  while (stream_->Read(&message)) {
    absl::MutexLock lock(&mu_);
    last_received_ = absl::Now();
    Handle(message);
  }
  absl::MutexLock lock(&mu_);
  read_done_ = true;
  Break(absl::UnavailableError("the controller closed the stream"));
}

void Session::WriteLoop() {
  for (;;) {
    pb::AgentMessage message;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Session* s) ABSL_NO_THREAD_SAFETY_ANALYSIS {
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
      Break(absl::UnavailableError("the stream to the controller broke"));
      return;
    }
  }
  stream_->WritesDone();
}

void Session::Handle(const pb::ControllerMessage& message) {
  switch (message.msg_case()) {
    case pb::ControllerMessage::kRegistered:
      OnRegistered(message.registered());
      break;
    case pb::ControllerMessage::kLease:
      OnLease(message.lease());
      break;
    case pb::ControllerMessage::kAck:
      OnAck(message.ack());
      break;
    case pb::ControllerMessage::kRevoke:
      unacked_.erase(message.revoke().lease_id());
      if (LeaseRun* run = FindActive(message.revoke().lease_id())) {
        FERRY_LOG(Info) << "lease " << run->lease_id << " revoked (" << message.revoke().reason()
                        << "): stopping at the next batch";
        if (run->stop == StopReason::kNone) run->stop = StopReason::kRevoked;
        run->cancel = true;
      }
      break;
    case pb::ControllerMessage::kRateUpdate:
      if (LeaseRun* run = FindActive(message.rate_update().lease_id())) {
        run->limiter.SetRate(message.rate_update().keys_per_second());
      }
      break;
    default:
      FERRY_LOG(Debug) << "ignoring an unknown message from the controller";
  }
}

void Session::OnRegistered(const pb::ControllerMessage::Registered& registered) {
  registered_ = true;
  agent_id_ = registered.agent_id();
  if (registered.heartbeat_interval_ms() > 0) {
    heartbeat_interval_ = std::min(options_.heartbeat_interval,
                                   absl::Milliseconds(registered.heartbeat_interval_ms()));
  }
  if (registered.lease_timeout_ms() > 0) {
    ack_timeout_ = std::max(absl::Milliseconds(registered.lease_timeout_ms()), absl::Seconds(5));
  }
  FERRY_LOG(Info) << "registered with the controller at " << options_.controller_address
                  << " as agent " << agent_id_ << " (" << options_.slots << " slots)";
}

void Session::OnLease(const pb::ControllerMessage::Lease& lease) {
  if (!broken_.ok()) return;  // The lease dies with the stream.
  if (FindActive(lease.lease_id()) != nullptr) {
    FERRY_LOG(Warning) << "ignoring a second grant of running lease " << lease.lease_id();
    return;
  }
  pb::AgentMessage answer;
  if (draining_ || ActiveCount() >= options_.slots) {
    if (draining_) {
      FERRY_LOG(Info) << "handing back lease " << lease.lease_id() << " at once: shutting down";
    } else {
      FERRY_LOG(Warning) << "handing back lease " << lease.lease_id() << " at once: all "
                         << options_.slots << " slots are busy";
    }
    pb::AgentMessage::Returned* returned = answer.mutable_returned();
    returned->set_lease_id(lease.lease_id());
    returned->set_epoch(lease.epoch());
    *returned->mutable_checkpoint() = lease.resume();
    returned->set_draining(draining_);
    Send(std::move(answer));
    return;
  }
  absl::StatusOr<ShardSpec> spec = SpecFromLease(lease);
  if (!spec.ok()) {
    FERRY_LOG(Error) << "lease " << lease.lease_id() << " (job " << lease.job_id()
                     << ") is unusable: " << spec.status().message();
    pb::AgentMessage::ShardFinished* finished = answer.mutable_finished();
    finished->set_lease_id(lease.lease_id());
    finished->set_epoch(lease.epoch());
    *finished->mutable_checkpoint() = lease.resume();
    finished->set_status_code(static_cast<int>(spec.status().code()));
    finished->set_status_message(std::string(spec.status().message()));
    Send(std::move(answer), lease.lease_id());
    return;
  }
  FERRY_LOG(Info) << "starting " << DescribeLease(lease, *spec);
  auto run = std::make_unique<LeaseRun>(lease.keys_per_second());
  run->lease_id = lease.lease_id();
  run->epoch = lease.epoch();
  run->spec = *std::move(spec);
  run->copy = CopyOptionsFromLease(options_.copy, lease);
  run->resume = CheckpointFromProto(lease.resume());
  run->latest = run->resume;
  run->reported = run->resume;
  LeaseRun* raw = run.get();
  runs_.push_back(std::move(run));
  raw->thread = std::thread([this, raw] { RunShard(raw); });
}

void Session::OnAck(const pb::ControllerMessage::Ack& ack) {
  auto it = unacked_.find(ack.lease_id());
  if (it != unacked_.end() && --it->second <= 0) unacked_.erase(it);
}

LeaseRun* Session::FindActive(const std::string& lease_id) {
  for (auto& run : runs_) {
    if (!run->ended && run->lease_id == lease_id) return run.get();
  }
  return nullptr;
}

int Session::ActiveCount() {
  // A revoked shard stops within a batch; the controller already counts its slot as free.
  return static_cast<int>(std::count_if(runs_.begin(), runs_.end(), [](const auto& run) {
    return !run->ended && run->stop == StopReason::kNone;
  }));
}

void Session::RunShard(LeaseRun* run) {
  CopyCallbacks callbacks;
  callbacks.on_checkpoint = [this, run](const Checkpoint& checkpoint) {
    absl::MutexLock lock(&mu_);
    run->latest = checkpoint;
    run->changed = true;
  };
  callbacks.on_failed_key = [this, run](const std::string& key, const std::string& reason) {
    absl::MutexLock lock(&mu_);
    pb::FailedKey& failed = run->failed.emplace_back();
    failed.set_key(key);
    failed.set_reason(reason);
  };
  const absl::Status status =
      CopyShard(run->spec, run->copy, run->resume, &run->limiter, &run->cancel, callbacks);
  absl::MutexLock lock(&mu_);
  ReportEnd(*run, status);
  run->ended = true;
}

bool Session::Tick(absl::Time now) {
  if (!unacked_.empty() && now - last_received_ > ack_timeout_) {
    Break(absl::DeadlineExceededError(absl::StrCat("the controller has not answered for ",
                                                   absl::FormatDuration(now - last_received_))));
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
      if (!run->ended && run->stop == StopReason::kNone) ReportProgress(*run);
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
  return !(draining_ && runs_.empty() && (unacked_.empty() || now >= drain_deadline_));
}

void Session::ReportProgress(LeaseRun& run) {
  if (!run.changed && run.failed.empty()) return;
  pb::AgentMessage message;
  *message.mutable_progress()->mutable_failed_keys() = TakeFailedKeys(run, /*expect_ack=*/true);
  FillReport(run, run.latest, message.mutable_progress());
  run.reported = run.latest;
  run.changed = false;
  Send(std::move(message), run.lease_id);
}

void Session::ReportEnd(LeaseRun& run, const absl::Status& status) {
  const std::string shard =
      absl::StrCat("lease ", run.lease_id, " (", run.spec.source.Redacted(), " db ",
                   run.spec.source_db, " shard ", run.spec.shard_index, ")");
  if (run.stop == StopReason::kStreamLost) {
    FERRY_LOG(Info) << shard << " stopped: the stream to the controller is gone";
    return;
  }
  const bool finished = status.ok() && run.latest.done;
  if (finished || run.stop == StopReason::kNone) {
    if (finished) {
      FERRY_LOG(Info) << shard << " finished: " << run.latest.counters.scanned << " keys scanned, "
                      << run.latest.counters.copied << " copied";
    } else {
      FERRY_LOG(Error) << shard << " failed: " << status.message();
    }
    pb::AgentMessage message;
    pb::AgentMessage::ShardFinished* report = message.mutable_finished();
    *report->mutable_failed_keys() = TakeFailedKeys(run, /*expect_ack=*/true);
    FillReport(run, run.latest, report);
    report->set_status_code(finished ? 0 : static_cast<int>(status.code()));
    if (!finished) report->set_status_message(std::string(status.message()));
    Send(std::move(message), run.lease_id);
    return;
  }
  // Revoked or drained: hand the shard back at its last checkpoint. After a revoke the
  // controller may have forgotten the lease and not answer, so only a drain waits for the Ack.
  const bool drain = run.stop == StopReason::kDrain;
  FERRY_LOG(Info) << shard << " handed back at cursor " << run.latest.cursor;
  pb::AgentMessage message;
  pb::AgentMessage::Returned* report = message.mutable_returned();
  *report->mutable_failed_keys() = TakeFailedKeys(run, drain);
  FillReport(run, run.latest, report);
  report->set_draining(drain);  // The controller leases this agent nothing more.
  Send(std::move(message), drain ? run.lease_id : "");
}

FailedKeys Session::TakeFailedKeys(LeaseRun& run, bool expect_ack) {
  FailedKeys keys;
  size_t bytes = 0;
  for (pb::FailedKey& key : run.failed) {
    const size_t size = key.key().size() + key.reason().size() + 16;
    if (bytes + size > kMaxFailedKeyBytes && !keys.empty()) {
      pb::AgentMessage message;
      *message.mutable_progress()->mutable_failed_keys() = std::move(keys);
      FillReport(run, run.reported, message.mutable_progress());
      Send(std::move(message), expect_ack ? run.lease_id : "");
      keys.Clear();
      bytes = 0;
    }
    *keys.Add() = std::move(key);
    bytes += size;
  }
  run.failed.clear();
  return keys;
}

void Session::Send(pb::AgentMessage message, const std::string& ack_lease_id) {
  if (!broken_.ok()) return;
  if (!ack_lease_id.empty()) ++unacked_[ack_lease_id];
  outbox_.push_back(std::move(message));
}

void Session::StopAll(StopReason reason) {
  for (auto& run : runs_) {
    if (run->ended) continue;
    if (run->stop == StopReason::kNone || reason == StopReason::kStreamLost) run->stop = reason;
    run->cancel = true;
  }
}

void Session::Break(absl::Status why) {
  if (broken_.ok()) broken_ = std::move(why);
}

std::vector<std::unique_ptr<LeaseRun>> Session::TakeEnded(bool all) {
  std::vector<std::unique_ptr<LeaseRun>> taken;
  auto keep = runs_.begin();
  for (auto& run : runs_) {
    if (all || run->ended) {
      taken.push_back(std::move(run));
    } else {
      *keep++ = std::move(run);
    }
  }
  runs_.erase(keep, runs_.end());
  return taken;
}

void Session::Join(std::vector<std::unique_ptr<LeaseRun>> runs) {
  for (auto& run : runs) run->thread.join();
}

// ------------------------------------------------------------------------------------------
// The channel.

absl::StatusOr<std::shared_ptr<grpc::Channel>> BuildChannel(const AgentOptions& options) {
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options.tls || !options.tls_ca_file.empty()) {
    grpc::SslCredentialsOptions ssl;
    if (!options.tls_ca_file.empty()) {
      FERRY_ASSIGN_OR_RETURN(ssl.pem_root_certs, rpc::ReadFileContents(options.tls_ca_file));
    }
    credentials = grpc::SslCredentials(ssl);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  grpc::ChannelArguments args;
  // gRPC's own reconnect backoff (up to 2 minutes by default) would outlast ours. Not
  // GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC also uses it as the timeout of one connection
  // attempt (TCP and TLS handshakes), 20 s by default.
  const int max_backoff_ms =
      std::max(250, static_cast<int>(absl::ToInt64Milliseconds(options.max_backoff)));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 250);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, max_backoff_ms);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, kKeepaliveTimeMs);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveTimeoutMs);
  return grpc::CreateCustomChannel(options.controller_address, credentials, args);
}

std::string DefaultName() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return absl::StrCat(host[0] != '\0' ? host : "agent", ":", getpid());
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Agent

absl::Status Agent::ValidateOptions(const AgentOptions& options) {
  if (options.controller_address.empty()) {
    return absl::InvalidArgumentError("the controller address is empty");
  }
  if (options.slots < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("slots must be at least 1 (got ", options.slots, ")"));
  }
  if (!options.tls_ca_file.empty()) {
    FERRY_RETURN_IF_ERROR(
        Annotate(rpc::ReadFileContents(options.tls_ca_file).status(), "TLS CA file"));
  }
  return absl::OkStatus();
}

std::unique_ptr<Agent> Agent::Create(AgentOptions options, std::shared_ptr<grpc::Channel> channel) {
  if (options.name.empty()) options.name = DefaultName();
  if (channel != nullptr && options.controller_address.empty()) {
    options.controller_address = "(in-process)";
  }
  if (absl::Status status = ValidateOptions(options); !status.ok()) {
    FERRY_LOG(Error) << "agent options: " << status.message();
    return nullptr;
  }
  const bool own_channel = channel == nullptr;
  if (own_channel) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> built = BuildChannel(options);
    if (!built.ok()) {
      FERRY_LOG(Error) << "agent channel: " << built.status().message();
      return nullptr;
    }
    channel = *std::move(built);
  }
  return std::unique_ptr<Agent>(new Agent(std::move(options), std::move(channel), own_channel));
}

Agent::Agent(AgentOptions options, std::shared_ptr<grpc::Channel> channel, bool own_channel)
    : options_(std::move(options)), channel_(std::move(channel)), own_channel_(own_channel) {}

Agent::~Agent() = default;

void Agent::Shutdown() {
  absl::MutexLock lock(&mu_);
  shutdown_ = true;
}

bool Agent::shutdown_requested() {
  absl::MutexLock lock(&mu_);
  return shutdown_;
}

bool Agent::SleepUnlessShutdown(absl::Duration duration) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&shutdown_), duration);
  return shutdown_;
}

absl::Status Agent::WaitForChannel() {
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + options_.connect_timeout;
  grpc_connectivity_state state = channel_->GetState(/*try_to_connect=*/true);
  if (state == GRPC_CHANNEL_TRANSIENT_FAILURE) {
    // Left from an earlier attempt: connect now, not after gRPC's own backoff, so this
    // attempt and its log line say how the controller is doing now.
    grpc::experimental::ChannelResetConnectionBackoff(channel_.get());
  }
  while (state != GRPC_CHANNEL_READY) {
    if (shutdown_requested()) return absl::CancelledError("shutting down");
    const absl::Time now = absl::Now();
    // Still failing a moment after the retry: opening the stream then fails at once, with
    // gRPC's reason (refused, TLS handshake...).
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE && now - start >= kConnectFailureGrace) {
      return absl::OkStatus();
    }
    if (now >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("no connection within ", absl::FormatDuration(options_.connect_timeout)));
    }
    // Short slices, so Shutdown() is noticed while the controller is unreachable.
    channel_->WaitForStateChange(state, absl::ToChronoTime(std::min(deadline, now + kTick)));
    state = channel_->GetState(/*try_to_connect=*/true);
  }
  return absl::OkStatus();
}

absl::Status Agent::Run() {
  absl::Duration backoff = kInitialBackoff;
  absl::BitGen random;
  for (int attempt = 1; !shutdown_requested(); ++attempt) {
    bool registered = false;
    absl::Status status = own_channel_ ? WaitForChannel() : absl::OkStatus();
    if (status.ok()) {
      Session session(options_, channel_, [this] { return shutdown_requested(); });
      status = session.Run(&registered);
    }
    if (shutdown_requested()) break;
    // A refused token or name does not fix itself: retrying would only hide it. Anything else
    // (UNAVAILABLE while the controller restarts, a deadline) is retried.
    if (absl::IsUnauthenticated(status) || absl::IsPermissionDenied(status)) {
      FERRY_LOG(Error) << "controller at " << options_.controller_address
                       << " refused this agent: " << status.ToString() << "; giving up";
      return absl::Status(
          status.code(), absl::StrCat("the controller at ", options_.controller_address,
                                      " refused this agent (", status.ToString(),
                                      "); check the token given with --token-file or FERRY_TOKEN"));
    }
    if (registered) {
      attempt = 1;
      backoff = kInitialBackoff;
    }
    // Up to 20% less than the backoff, so a fleet does not reconnect in lockstep.
    const absl::Duration wait = backoff * absl::Uniform(random, 0.8, 1.0);
    FERRY_LOG(Warning) << "controller at " << options_.controller_address << ": "
                       << status.ToString() << " (attempt " << attempt << "); reconnecting in "
                       << absl::FormatDuration(absl::Trunc(wait, absl::Milliseconds(1)));
    if (SleepUnlessShutdown(wait)) break;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
  FERRY_LOG(Info) << "agent stopped";
  return absl::OkStatus();
}

}  // namespace ferry::agent
