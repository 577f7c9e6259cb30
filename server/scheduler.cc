// Leases: granting, reports, expiry and agents. Jobs are in scheduler_jobs.cc.

#include "server/scheduler.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/redis/errors.h"
#include "proto/wire/counters.h"
#include "proto/wire/shard.h"
#include "server/job_spec.h"
#include "server/scheduler_internal.h"

namespace ferry::server {
namespace {

// A shard that ends with a retryable error this many times in a row without progress fails the
// job.
constexpr int kMaxShardRetries = 5;

}  // namespace

using ferry::v1::AgentMessage;
using ferry::v1::ControllerMessage;

Scheduler::Scheduler(JobStore* store, SchedulerOptions options)
    : store_(store),
      options_(std::move(options)),
      own_metrics_(options_.metrics == nullptr ? std::make_unique<metrics::Registry>() : nullptr),
      metrics_(options_.metrics != nullptr ? *options_.metrics : *own_metrics_) {}

Scheduler::~Scheduler() = default;

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(JobStore* store,
                                                             SchedulerOptions options) {
  std::unique_ptr<Scheduler> scheduler(new Scheduler(store, std::move(options)));
  absl::MutexLock lock(&scheduler->mu_);
  FERRY_RETURN_IF_ERROR(scheduler->LoadLocked());
  return scheduler;
}

absl::Status Scheduler::LoadLocked() {
  FERRY_ASSIGN_OR_RETURN(std::vector<JobRecord> jobs, store_->LoadJobs());
  for (JobRecord& record : jobs) {
    FERRY_ASSIGN_OR_RETURN(uint64_t failed_keys, store_->CountFailedKeys(record.id));
    std::string id = record.id;
    JobEntry& job = jobs_[id];
    job.record = std::move(record);
    job.failed_keys = failed_keys;
    job_order_.push_back(id);
  }
  FERRY_ASSIGN_OR_RETURN(std::vector<ShardRecord> shards, store_->LoadShards());
  int requeued = 0;
  FERRY_RETURN_IF_ERROR(store_->BeginBatch());  // Every lease taken back in one commit.
  for (ShardRecord& record : shards) {
    auto job = jobs_.find(record.job_id);
    if (job == jobs_.end()) continue;
    if (record.state == ferry::v1::SHARD_STATE_LEASED) {
      // Its agent talked to a previous controller process and has dropped it.
      record.state = ferry::v1::SHARD_STATE_PENDING;
      record.lease_id.clear();
      record.agent_id.clear();
      FERRY_RETURN_IF_ERROR(store_->UpdateShard(record));
      ++requeued;
    }
    job->second.shard_ids.push_back(record.id);
    if (record.state == ferry::v1::SHARD_STATE_PENDING) job->second.pending.insert(record.id);
    wire::AddCounters(job->second.totals, record.checkpoint.counters());
    shards_[record.id].record = std::move(record);
  }
  FERRY_RETURN_IF_ERROR(store_->CommitBatch());
  for (auto& [id, job] : jobs_) {
    BuildLiveGroupsLocked(job);
    if (job.record.state == ferry::v1::JOB_STATE_CUTOVER) {
      // The watchers are gone with the previous process: the cutover starts over on request.
      job.record.live.set_cutover_error(
          "the controller restarted during the cutover: ask for it again once the job is LIVE");
      FERRY_RETURN_IF_ERROR(SetJobStateLocked(job, ferry::v1::JOB_STATE_LIVE, ""));
    }
  }
  FERRY_LOG(Info) << "loaded " << jobs_.size() << " jobs, " << shards_.size() << " shards ("
                  << requeued << " leases taken back)";
  return absl::OkStatus();
}

int Scheduler::ParallelLimit(const JobEntry& job) const {
  int parallel = job.record.spec.parallel();
  return parallel > 0 ? parallel : options_.default_parallel;
}

void Scheduler::SendLocked(const std::string& agent_id, const ControllerMessage& message) {
  if (batch_depth_ > 0) {
    outbox_.emplace_back(agent_id, message);  // Sent once the batch is committed.
    return;
  }
  auto agent = agents_.find(agent_id);
  if (agent != agents_.end() && agent->second.sender != nullptr)
    agent->second.sender->Send(message);
}

void Scheduler::DispatchLocked() {
  BeginBatchLocked();  // Every grant in one commit; each Lease goes out once it succeeded.
  GrantRoundsLocked();
  EndBatchLocked();
}

void Scheduler::GrantRoundsLocked() {
  const absl::Time now = options_.clock();
  bool granted = true;
  // One shard per agent per round, so that shards spread over the agents.
  while (granted) {
    granted = false;
    for (auto& [id, agent] : agents_) {
      const int busy = static_cast<int>(agent.shards.size()) - agent.watches;
      if (agent.draining || busy >= agent.slots) continue;
      if (now - agent.last_seen > options_.lease_timeout) continue;  // Silent: maybe hung.
      ShardEntry* shard = PickShardLocked();
      if (shard == nullptr) return;
      if (!GrantLocked(agent, *shard)) return;
      granted = true;
    }
  }
}

Scheduler::ShardEntry* Scheduler::PickShardLocked() {
  const size_t n = job_order_.size();
  for (size_t i = 0; i < n; ++i) {
    const size_t index = (next_job_ + i) % n;
    JobEntry& job = jobs_.at(job_order_[index]);
    if (!job.record.planned || !IsRunnable(job.record.state)) continue;
    const int limit = ParallelLimit(job);
    for (int64_t id : job.pending) {
      ShardEntry& shard = shards_.at(id);
      if (!MayGrantLocked(job, shard)) continue;
      // A live job's watch takes no slot and counts against no node's limit.
      if (shard.record.shard.watch() ||
          job.running_per_node[shard.record.shard.source_node()] < limit) {
        next_job_ = (index + 1) % n;  // Round robin: the next grant starts at the next job.
        return &shard;
      }
    }
  }
  return nullptr;
}

bool Scheduler::GrantLocked(AgentEntry& agent, ShardEntry& shard) {
  JobEntry& job = jobs_.at(shard.record.job_id);
  ShardRecord updated = shard.record;
  updated.state = ferry::v1::SHARD_STATE_LEASED;
  updated.epoch += 1;
  updated.lease_id = absl::StrCat(updated.job_id, "-", updated.id, "-", updated.epoch);
  updated.agent_id = agent.id;
  // Persisted first, so that an epoch is never granted twice, even across a restart.
  const absl::Time write_start = absl::Now();
  const absl::Status stored = store_->UpdateShard(updated);
  metrics_.store_write_grant->Observe(absl::ToDoubleSeconds(absl::Now() - write_start));
  if (!stored.ok()) {
    FERRY_LOG(Error) << "cannot lease shard " << updated.id << ": " << stored;
    return false;
  }
  shard.record = std::move(updated);
  shard.expiry = options_.clock() + options_.lease_timeout;
  shard.revoking = false;
  job.pending.erase(shard.record.id);
  if (shard.record.shard.watch()) {
    agent.watches += 1;
  } else {
    job.running += 1;
    job.running_per_node[shard.record.shard.source_node()] += 1;
  }
  agent.shards.insert(shard.record.id);
  OnShardGrantedLocked(job, shard);
  leases_[shard.record.lease_id] = shard.record.id;
  if (job.record.state == ferry::v1::JOB_STATE_PENDING) {
    (void)SetJobStateLocked(job, ferry::v1::JOB_STATE_RUNNING, "");
  }
  shard.rate_share = RateShareOf(job.record.spec, job.running);
  UpdateRateSharesLocked(job);

  ControllerMessage message;
  *message.mutable_lease() =
      MakeLease(job.record.spec, shard.record, shard.rate_share, options_.default_batch_keys);
  SendLocked(agent.id, message);
  metrics_.lease_grants->Increment();
  FERRY_LOG_FIELDS(Debug, LogLease(job.record.id, shard.record.lease_id))
      << "lease " << shard.record.lease_id << " (" << wire::ShardName(shard.record.shard) << ") to "
      << agent.id;
  return true;
}

void Scheduler::UpdateRateSharesLocked(JobEntry& job) {
  if (job.record.spec.rate_limit() <= 0 && job.record.spec.rate_limit_bytes() <= 0) return;
  const RateShare share = RateShareOf(job.record.spec, job.running);
  for (int64_t id : job.shard_ids) {
    ShardEntry& shard = shards_.at(id);
    if (shard.record.state != ferry::v1::SHARD_STATE_LEASED || shard.revoking) continue;
    if (shard.rate_share == share) continue;
    shard.rate_share = share;
    ControllerMessage message;
    message.mutable_rate_update()->set_lease_id(shard.record.lease_id);
    message.mutable_rate_update()->set_keys_per_second(share.keys_per_second);
    message.mutable_rate_update()->set_bytes_per_second(share.bytes_per_second);
    SendLocked(shard.record.agent_id, message);
  }
}

void Scheduler::ReleaseLocked(ShardEntry& shard) {
  JobEntry& job = jobs_.at(shard.record.job_id);
  auto agent = agents_.find(shard.record.agent_id);
  const bool watch = shard.record.shard.watch();
  if (agent != agents_.end() && agent->second.shards.erase(shard.record.id) > 0 && watch) {
    agent->second.watches -= 1;
  }
  leases_.erase(shard.record.lease_id);
  if (watch) {
    OnWatchLostLocked(job, shard);
  } else {
    job.running -= 1;
    job.running_per_node[shard.record.shard.source_node()] -= 1;
  }
  shard.revoking = false;
  shard.rate_share = RateShare();
}

absl::Status Scheduler::ApplyCheckpointLocked(
    ShardEntry& shard, const ShardRecord& updated,
    const google::protobuf::RepeatedPtrField<ferry::v1::FailedKey>& failed_keys) {
  std::vector<ferry::v1::FailedKey> keys(failed_keys.begin(), failed_keys.end());
  const absl::Time write_start = absl::Now();
  const absl::Status stored = store_->UpdateShard(updated, keys);
  metrics_.store_write_checkpoint->Observe(absl::ToDoubleSeconds(absl::Now() - write_start));
  FERRY_RETURN_IF_ERROR(stored);
  JobEntry& job = jobs_.at(shard.record.job_id);
  // The shard's counters are totals: swap its old ones for the new ones in the job's sum.
  wire::SubtractCounters(job.totals, shard.record.checkpoint.counters());
  wire::AddCounters(job.totals, updated.checkpoint.counters());
  if (!keys.empty()) {
    // The store keeps one row per key (a key SCAN returned twice is reported twice): count rows.
    FERRY_ASSIGN_OR_RETURN(job.failed_keys, store_->CountFailedKeys(shard.record.job_id));
  }
  const bool was_leased = shard.record.state == ferry::v1::SHARD_STATE_LEASED;
  if (was_leased && updated.state != ferry::v1::SHARD_STATE_LEASED) {
    ReleaseLocked(shard);
    shard.record = updated;
    UpdateRateSharesLocked(job);
  } else {
    shard.record = updated;
  }
  if (updated.state == ferry::v1::SHARD_STATE_PENDING) job.pending.insert(updated.id);
  const absl::Time now = options_.clock();
  job.record.update_time = now;
  AddSampleLocked(job, now);
  return absl::OkStatus();
}

void Scheduler::RequeueLocked(ShardEntry& shard) {
  ShardRecord updated = shard.record;
  updated.state = ferry::v1::SHARD_STATE_PENDING;
  updated.lease_id.clear();
  updated.agent_id.clear();
  // On failure the lease stays in memory and expires again later.
  if (absl::Status status = ApplyCheckpointLocked(shard, updated, {}); !status.ok()) {
    FERRY_LOG(Error) << "cannot requeue shard " << shard.record.id << ": " << status;
  }
}

absl::StatusOr<Scheduler::ShardEntry*> Scheduler::FindLeaseLocked(const std::string& agent_id,
                                                                  const std::string& lease_id,
                                                                  uint64_t epoch) {
  auto it = leases_.find(lease_id);
  if (it == leases_.end()) {
    return absl::FailedPreconditionError(absl::StrCat("lease ", lease_id, " is not held"));
  }
  ShardEntry& shard = shards_.at(it->second);
  if (shard.record.epoch != epoch || shard.record.agent_id != agent_id) {
    return absl::FailedPreconditionError(
        absl::StrCat("lease ", lease_id, ": epoch ", epoch, " of ", agent_id, " is stale"));
  }
  return &shard;
}

absl::Status Scheduler::ReportLocked(AgentEntry& agent, const AgentMessage::Progress& progress) {
  FERRY_ASSIGN_OR_RETURN(ShardEntry * shard,
                         FindLeaseLocked(agent.id, progress.lease_id(), progress.epoch()));
  ShardRecord updated = shard->record;
  updated.checkpoint = progress.checkpoint();
  updated.checkpoint.set_pass(shard->record.checkpoint.pass());  // The controller's to set.
  if (updated.checkpoint.cursor() != shard->record.checkpoint.cursor()) shard->retries = 0;
  FERRY_RETURN_IF_ERROR(ApplyCheckpointLocked(*shard, updated, progress.failed_keys()));
  SendLocked(agent.id, MakeAck(progress.lease_id(), progress.epoch()));
  if (updated.shard.watch()) OnWatchReportLocked(jobs_.at(updated.job_id), *shard);
  return absl::OkStatus();
}

absl::Status Scheduler::FinishLocked(AgentEntry& agent,
                                     const AgentMessage::ShardFinished& finished) {
  FERRY_ASSIGN_OR_RETURN(ShardEntry * shard,
                         FindLeaseLocked(agent.id, finished.lease_id(), finished.epoch()));
  JobEntry& job = jobs_.at(shard->record.job_id);
  ShardRecord updated = shard->record;
  updated.checkpoint = finished.checkpoint();
  updated.checkpoint.set_pass(shard->record.checkpoint.pass());
  updated.lease_id.clear();
  updated.agent_id.clear();
  const auto code = static_cast<absl::StatusCode>(finished.status_code());
  const std::string message = ScrubSecrets(finished.status_message(), job.record.spec);
  // A transient error or a redirect (the server restarting, a failover) may pass: the shard goes
  // back to the queue (errors.h). CANCELLED means the agent stopped it, as with Returned.
  const bool retry = code == absl::StatusCode::kCancelled ||
                     (redis::MayRetryLater(code) && shard->retries < kMaxShardRetries);
  if (code == absl::StatusCode::kOk && updated.shard.watch()) {
    updated.state = ferry::v1::SHARD_STATE_PENDING;  // A watch ends only with its job.
  } else if (code == absl::StatusCode::kOk) {
    updated.state = ferry::v1::SHARD_STATE_DONE;
    updated.checkpoint.set_done(true);
  } else if (retry) {
    updated.state = ferry::v1::SHARD_STATE_PENDING;
  } else {
    updated.state = ferry::v1::SHARD_STATE_FAILED;
    updated.error = message;
  }
  FERRY_RETURN_IF_ERROR(ApplyCheckpointLocked(*shard, updated, finished.failed_keys()));
  SendLocked(agent.id, MakeAck(finished.lease_id(), finished.epoch()));
  if (retry && code != absl::StatusCode::kCancelled) {
    shard->retries += 1;
    metrics_.shard_retries->Increment();
    FERRY_LOG_FIELDS(Warning, LogJob(job.record.id))
        << "job " << job.record.id << ": " << wire::ShardName(updated.shard)
        << " goes back to the queue after: " << message;
  }
  if (updated.state == ferry::v1::SHARD_STATE_FAILED && !IsEnded(job.record.state)) {
    // Warning, not error: the job's error says it to every client (and `ferry migrate`).
    FERRY_LOG_FIELDS(Warning, LogJob(job.record.id))
        << "job " << job.record.id << ": " << wire::ShardName(updated.shard)
        << " failed: " << message;
    (void)SetJobStateLocked(job, ferry::v1::JOB_STATE_FAILED,
                            absl::StrCat(wire::ShardName(updated.shard), ": ", message), code);
    RevokeJobLeasesLocked(job, "job failed");
  }
  MaybeCompleteJobLocked(job);
  EvaluateLiveLocked(job);
  return absl::OkStatus();
}

absl::Status Scheduler::ReturnLocked(AgentEntry& agent, const AgentMessage::Returned& returned) {
  if (returned.draining()) agent.draining = true;
  FERRY_ASSIGN_OR_RETURN(ShardEntry * shard,
                         FindLeaseLocked(agent.id, returned.lease_id(), returned.epoch()));
  ShardRecord updated = shard->record;
  updated.checkpoint = returned.checkpoint();
  updated.checkpoint.set_pass(shard->record.checkpoint.pass());
  updated.state = ferry::v1::SHARD_STATE_PENDING;
  updated.lease_id.clear();
  updated.agent_id.clear();
  FERRY_RETURN_IF_ERROR(ApplyCheckpointLocked(*shard, updated, returned.failed_keys()));
  SendLocked(agent.id, MakeAck(returned.lease_id(), returned.epoch()));
  MaybeCompleteJobLocked(jobs_.at(updated.job_id));
  return absl::OkStatus();
}

std::string Scheduler::RegisterAgent(const std::string& name, int slots, const std::string& peer,
                                     std::shared_ptr<AgentSender> sender) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = options_.clock();
  AgentEntry agent;
  agent.id = absl::StrCat("agent-", ++next_agent_);
  agent.name = name;
  agent.peer = peer;
  agent.slots = std::max(slots, 0);
  agent.connect_time = now;
  agent.last_seen = now;
  agent.sender = std::move(sender);
  ControllerMessage registered;
  registered.mutable_registered()->set_agent_id(agent.id);
  registered.mutable_registered()->set_heartbeat_interval_ms(
      static_cast<int32_t>(absl::ToInt64Milliseconds(options_.heartbeat_interval)));
  registered.mutable_registered()->set_lease_timeout_ms(
      static_cast<int32_t>(absl::ToInt64Milliseconds(options_.lease_timeout)));
  agent.sender->Send(registered);
  FERRY_LOG(Info) << "agent " << agent.id << " (" << name << ", " << peer << ") registered with "
                  << agent.slots << " slots";
  std::string id = agent.id;
  agents_.emplace(id, std::move(agent));
  DispatchLocked();
  return id;
}

void Scheduler::DisconnectAgent(const std::string& agent_id) {
  absl::MutexLock lock(&mu_);
  BeginBatchLocked();
  DisconnectLocked(agent_id);
  DispatchLocked();
  EndBatchLocked();
}

void Scheduler::DisconnectLocked(const std::string& agent_id) {
  auto agent = agents_.find(agent_id);
  if (agent == agents_.end()) return;
  const std::set<int64_t> held = agent->second.shards;
  for (int64_t id : held) RequeueLocked(shards_.at(id));
  agents_.erase(agent);
  FERRY_LOG(Info) << "agent " << agent_id << " disconnected; " << held.size()
                  << " shards back in the queue";
}

absl::Status Scheduler::HandleAgentMessageLocked(AgentEntry& agent, const AgentMessage& message) {
  const absl::Time now = options_.clock();
  agent.last_seen = now;
  for (int64_t id : agent.shards) {
    ShardEntry& shard = shards_.at(id);
    if (!shard.revoking) shard.expiry = now + options_.lease_timeout;
  }
  absl::Status status;
  std::string lease_id;
  switch (message.msg_case()) {
    case AgentMessage::kHeartbeat:
      break;
    case AgentMessage::kProgress:
      lease_id = message.progress().lease_id();
      status = ReportLocked(agent, message.progress());
      break;
    case AgentMessage::kFinished:
      lease_id = message.finished().lease_id();
      status = FinishLocked(agent, message.finished());
      break;
    case AgentMessage::kReturned:
      lease_id = message.returned().lease_id();
      status = ReturnLocked(agent, message.returned());
      break;
    case AgentMessage::kRegisterAgent:
      status = absl::FailedPreconditionError("already registered");
      break;
    case AgentMessage::MSG_NOT_SET:
      status = absl::InvalidArgumentError("empty agent message");
      break;
  }
  if (status.code() == absl::StatusCode::kFailedPrecondition && !lease_id.empty()) {
    ControllerMessage revoke;
    revoke.mutable_revoke()->set_lease_id(lease_id);
    revoke.mutable_revoke()->set_reason(std::string(status.message()));
    SendLocked(agent.id, revoke);
  }
  return status;
}

int Scheduler::ExpireLeases(absl::Time now) {
  absl::MutexLock lock(&mu_);
  int expired = 0;
  for (auto& [id, shard] : shards_) {
    if (shard.record.state != ferry::v1::SHARD_STATE_LEASED || now < shard.expiry) continue;
    FERRY_LOG_FIELDS(Warning, LogLease(shard.record.job_id, shard.record.lease_id))
        << "lease " << shard.record.lease_id << " of " << shard.record.agent_id << " expired; "
        << wire::ShardName(shard.record.shard) << " goes back to the queue";
    ControllerMessage revoke;
    revoke.mutable_revoke()->set_lease_id(shard.record.lease_id);
    revoke.mutable_revoke()->set_reason("lease expired");
    if (expired == 0) BeginBatchLocked();  // Every lease taken back in one commit.
    SendLocked(shard.record.agent_id, revoke);
    RequeueLocked(shard);
    metrics_.lease_expiries->Increment();
    ++expired;
  }
  if (expired > 0) {
    DispatchLocked();
    EndBatchLocked();
  }
  for (auto& [id, job] : jobs_) CheckCutoverLocked(job);  // Its deadline.
  return expired;
}

std::vector<ferry::v1::AgentInfo> Scheduler::ListAgents() {
  absl::MutexLock lock(&mu_);
  std::vector<ferry::v1::AgentInfo> out;
  for (const auto& [id, agent] : agents_) {
    ferry::v1::AgentInfo& info = out.emplace_back();
    info.set_agent_id(agent.id);
    info.set_name(agent.name);
    info.set_slots(agent.slots);
    info.set_running(static_cast<int32_t>(agent.shards.size()));
    info.set_peer(agent.peer);
    *info.mutable_connect_time() = ToTimestamp(agent.connect_time);
    *info.mutable_last_seen_time() = ToTimestamp(agent.last_seen);
  }
  return out;
}

}  // namespace ferry::server
