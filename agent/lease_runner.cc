#include "agent/lease_runner.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/lease_spec.h"
#include "common/base/logging.h"

namespace ferry::agent {
namespace {

namespace pb = ::ferry::v1;

template <typename Report>
void FillReport(const std::string& lease_id, uint64_t epoch, const Checkpoint& checkpoint,
                Report* report) {
  report->set_lease_id(lease_id);
  report->set_epoch(epoch);
  CheckpointToProto(checkpoint, report->mutable_checkpoint());
}

}  // namespace

namespace {

LeaseRunner::Grant WithSignals(LeaseRunner::Grant grant, const LiveSignals* signals,
                               RateLimiter* byte_limiter) {
  if (grant.copy.live.has_value()) grant.copy.live->signals = signals;
  grant.copy.byte_limiter = byte_limiter;
  return grant;
}

}  // namespace

LeaseRunner::LeaseRunner(Grant grant, CopyFunction copy)
    : byte_limiter_(grant.bytes_per_second),
      grant_(WithSignals(std::move(grant), &live_, &byte_limiter_)),
      copy_(std::move(copy)),
      limiter_(grant_.keys_per_second),
      latest_(grant_.resume),
      reported_(grant_.resume) {}

LeaseRunner::~LeaseRunner() { Join(); }

void LeaseRunner::Start(EndCallback on_end) {
  {
    absl::MutexLock lock(&mu_);
    batch_time_ = absl::Now();  // The first batch's time includes the shard's setup.
    if (grant_.metrics != nullptr) {
      metrics_ = grant_.metrics->LeaseStarted(grant_.job_id, grant_.lease_id);
    }
  }
  thread_ = std::thread([this, on_end = std::move(on_end)] { Run(on_end); });
}

void LeaseRunner::Join() {
  if (thread_.joinable()) thread_.join();
}

void LeaseRunner::Run(const EndCallback& on_end) {
  CopyCallbacks callbacks;
  callbacks.on_checkpoint = [this](const Checkpoint& checkpoint) { RecordCheckpoint(checkpoint); };
  callbacks.on_batch = [this] { RecordBatch(); };
  callbacks.on_failed_key = [this](const std::string& key, const std::string& reason) {
    RecordFailedKey(key, reason);
  };
  if (grant_.metrics != nullptr) {
    callbacks.on_retry = [this](const absl::Status& status) {
      grant_.metrics->ShardRetried(status);
    };
  }
  const absl::Status status =
      copy_(grant_.spec, grant_.copy, grant_.resume, &limiter_, &cancel_, callbacks);
  CountEnd(status);
  on_end(this, status);
}

void LeaseRunner::CountEnd(const absl::Status& status) {
  if (grant_.metrics == nullptr) return;
  absl::MutexLock lock(&mu_);
  const bool finished = status.ok() && latest_.done;
  const LeaseOutcome outcome = stop_ == StopReason::kStreamLost ? LeaseOutcome::kStreamLost
                               : finished                       ? LeaseOutcome::kFinished
                               : stop_ != StopReason::kNone     ? LeaseOutcome::kHandedBack
                               : status.ok()                    ? LeaseOutcome::kFinished
                                                                : LeaseOutcome::kFailed;
  grant_.metrics->LeaseEnded(grant_.job_id, grant_.lease_id, outcome, status);
}

void LeaseRunner::RecordBatch() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  AgentMetrics::BatchDone(metrics_, absl::ToDoubleSeconds(now - batch_time_));
  batch_time_ = now;
}

void LeaseRunner::RecordCheckpoint(const Checkpoint& checkpoint) {
  absl::MutexLock lock(&mu_);
  AgentMetrics::Checkpointed(metrics_, latest_.counters, checkpoint.counters);
  latest_ = checkpoint;
  changed_ = true;
}

void LeaseRunner::RecordFailedKey(const std::string& key, const std::string& reason) {
  absl::MutexLock lock(&mu_);
  pb::FailedKey& failed = failed_.emplace_back();
  failed.set_key(key);
  failed.set_reason(reason);
}

void LeaseRunner::Stop(StopReason reason) {
  absl::MutexLock lock(&mu_);
  if (ended_) return;
  if (stop_ == StopReason::kNone || reason == StopReason::kStreamLost) stop_ = reason;
  cancel_ = true;
}

bool LeaseRunner::ended() {
  absl::MutexLock lock(&mu_);
  return ended_;
}

bool LeaseRunner::active() {
  absl::MutexLock lock(&mu_);
  return !ended_ && stop_ == StopReason::kNone;
}

void LeaseRunner::MarkEnded() {
  absl::MutexLock lock(&mu_);
  ended_ = true;
}

std::vector<LeaseReport> LeaseRunner::TakeProgress() {
  absl::MutexLock lock(&mu_);
  std::vector<LeaseReport> reports;
  if (!changed_ && failed_.empty()) return reports;
  LeaseReport progress{{}, /*expects_ack=*/true};
  *progress.message.mutable_progress()->mutable_failed_keys() =
      TakeFailedKeys(/*expect_ack=*/true, &reports);
  FillReport(grant_.lease_id, grant_.epoch, latest_, progress.message.mutable_progress());
  reported_ = latest_;
  changed_ = false;
  reports.push_back(std::move(progress));
  return reports;
}

std::vector<LeaseReport> LeaseRunner::EndReports(const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  std::vector<LeaseReport> reports;
  const ShardSpec& spec = grant_.spec;
  const std::string shard = absl::StrCat("lease ", grant_.lease_id, " (", spec.source.Redacted(),
                                         " db ", spec.source_db, " shard ", spec.shard_index, ")");
  if (stop_ == StopReason::kStreamLost) {
    FERRY_LOG_FIELDS(Info, LogLease(grant_.job_id, grant_.lease_id))
        << shard << " stopped: the stream to the controller is gone";
    return reports;
  }
  const bool finished = status.ok() && latest_.done;
  if (finished || stop_ == StopReason::kNone) {
    if (finished) {
      FERRY_LOG_FIELDS(Info, LogLease(grant_.job_id, grant_.lease_id))
          << shard << " finished: " << latest_.counters.scanned() << " keys scanned, "
          << latest_.counters.copied() << " copied";
    } else {
      // Warning, not error: the controller makes it the job's error, which clients show.
      FERRY_LOG_FIELDS(Warning, LogLease(grant_.job_id, grant_.lease_id))
          << shard << " failed: " << status.message();
    }
    LeaseReport end{{}, /*expects_ack=*/true};
    pb::AgentMessage::ShardFinished* report = end.message.mutable_finished();
    *report->mutable_failed_keys() = TakeFailedKeys(/*expect_ack=*/true, &reports);
    FillReport(grant_.lease_id, grant_.epoch, latest_, report);
    report->set_status_code(finished ? 0 : static_cast<int>(status.code()));
    if (!finished) report->set_status_message(std::string(status.message()));
    reports.push_back(std::move(end));
    return reports;
  }
  // Revoked or drained: hand the shard back at its last checkpoint. After a revoke the
  // controller may have forgotten the lease and not answer, so only a drain waits for the Ack.
  const bool drain = stop_ == StopReason::kDrain;
  FERRY_LOG_FIELDS(Info, LogLease(grant_.job_id, grant_.lease_id))
      << shard << " handed back at cursor " << latest_.cursor;
  LeaseReport end{{}, drain};
  pb::AgentMessage::Returned* report = end.message.mutable_returned();
  *report->mutable_failed_keys() = TakeFailedKeys(drain, &reports);
  FillReport(grant_.lease_id, grant_.epoch, latest_, report);
  report->set_draining(drain);  // The controller leases this agent nothing more.
  reports.push_back(std::move(end));
  return reports;
}

google::protobuf::RepeatedPtrField<pb::FailedKey> LeaseRunner::TakeFailedKeys(
    bool expect_ack, std::vector<LeaseReport>* out) {
  google::protobuf::RepeatedPtrField<pb::FailedKey> keys;
  size_t bytes = 0;
  for (pb::FailedKey& key : failed_) {
    const size_t size = key.key().size() + key.reason().size() + 16;
    if (bytes + size > kMaxFailedKeyBytes && !keys.empty()) {
      LeaseReport overflow{{}, expect_ack};
      *overflow.message.mutable_progress()->mutable_failed_keys() = std::move(keys);
      FillReport(grant_.lease_id, grant_.epoch, reported_, overflow.message.mutable_progress());
      out->push_back(std::move(overflow));
      keys.Clear();
      bytes = 0;
    }
    *keys.Add() = std::move(key);
    bytes += size;
  }
  failed_.clear();
  return keys;
}

}  // namespace ferry::agent
