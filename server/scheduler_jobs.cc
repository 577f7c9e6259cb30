// Jobs: submission, planning results, state transitions and the answers of the Controller
// service. Leases are in scheduler.cc.

#include <algorithm>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "server/job_spec.h"
#include "server/scheduler.h"
#include "server/scheduler_internal.h"

namespace ferry::server {
namespace {

constexpr absl::Duration kRateWindow = absl::Seconds(10);
constexpr absl::Duration kSampleEvery = absl::Seconds(1);
constexpr int kDefaultFailedKeysPage = 1000;
constexpr int kMaxFailedKeysPage = 10000;

std::string NewJobId() {
  static absl::Mutex mu(absl::kConstInit);
  static absl::BitGen* gen ABSL_GUARDED_BY(mu) = new absl::BitGen();
  absl::MutexLock lock(&mu);
  return absl::StrFormat("%012x", absl::Uniform<uint64_t>(*gen) & 0xffffffffffffULL);
}

// Whether a job that reaches `state` no longer needs its passwords in the state file: it
// cannot run again. FAILED keeps them, since ResumeJob (`ferry resume`) retries a failed job
// from its checkpoints; PAUSED and the running states need them too.
bool ForgetsPasswords(ferry::v1::JobState state) {
  return state == ferry::v1::JOB_STATE_DONE || state == ferry::v1::JOB_STATE_DONE_WITH_ERRORS ||
         state == ferry::v1::JOB_STATE_CANCELLED;
}

}  // namespace

absl::StatusOr<Scheduler::JobEntry*> Scheduler::FindJobLocked(const std::string& job_id) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  return &it->second;
}

absl::Status Scheduler::SetJobStateLocked(JobEntry& job, ferry::v1::JobState state,
                                          std::string error, absl::StatusCode code) {
  JobRecord updated = job.record;
  updated.state = state;
  updated.error_code = error.empty() ? 0 : static_cast<int>(code);
  updated.error = std::move(error);
  updated.update_time = options_.clock();
  if (absl::Status status = store_->UpdateJob(updated, ForgetsPasswords(state)); !status.ok()) {
    FERRY_LOG(Error) << "job " << job.record.id << ": cannot store state "
                     << ferry::v1::JobState_Name(state) << ": " << status;
    return status;
  }
  FERRY_LOG(Info) << "job " << job.record.id << ": " << ferry::v1::JobState_Name(job.record.state)
                  << " -> " << ferry::v1::JobState_Name(state);
  // The passwords stay in memory even when the store forgot them: reports that still arrive
  // from a cancelled job's agents are scrubbed with them (ScrubSecrets) until this process ends.
  job.record = std::move(updated);
  job.planning_retry.clear();  // Its wait ended (cancelled, paused); a resume plans afresh.

  return absl::OkStatus();
}

void Scheduler::RevokeJobLeasesLocked(JobEntry& job, absl::string_view reason) {
  const absl::Time now = options_.clock();
  for (int64_t id : job.shard_ids) {
    ShardEntry& shard = shards_.at(id);
    if (shard.record.state != ferry::v1::SHARD_STATE_LEASED || shard.revoking) continue;
    shard.revoking = true;
    shard.expiry = now + options_.lease_timeout;  // Not renewed: it must come back by then.
    ferry::v1::ControllerMessage revoke;
    revoke.mutable_revoke()->set_lease_id(shard.record.lease_id);
    revoke.mutable_revoke()->set_reason(std::string(reason));
    SendLocked(shard.record.agent_id, revoke);
  }
}

void Scheduler::MaybeCompleteJobLocked(JobEntry& job) {
  // A live job ends with its cutover (scheduler_live.cc).
  if (!job.record.planned || !IsRunnable(job.record.state) || job.record.spec.live()) return;
  // From the back: shards are leased in plan order, so the ones not done yet are there, and a
  // job of 100,000 shards does not walk the done ones on every finish.
  for (auto id = job.shard_ids.rbegin(); id != job.shard_ids.rend(); ++id) {
    if (shards_.at(*id).record.state != ferry::v1::SHARD_STATE_DONE) return;
  }
  const bool errors = job.totals.failed() > 0 || job.failed_keys > 0;
  (void)SetJobStateLocked(
      job, errors ? ferry::v1::JOB_STATE_DONE_WITH_ERRORS : ferry::v1::JOB_STATE_DONE, "");
}

void Scheduler::AddSampleLocked(JobEntry& job, absl::Time now) {
  if (!job.samples.empty() && now - job.samples.back().time < kSampleEvery) return;
  job.samples.push_back({now, job.totals.scanned(), job.totals.bytes()});
  while (job.samples.size() > 1 && now - job.samples[1].time > kRateWindow) {
    job.samples.pop_front();
  }
}

absl::StatusOr<std::string> Scheduler::SubmitJob(const ferry::v1::JobSpec& spec) {
  absl::MutexLock lock(&mu_);
  return SubmitJobLocked(spec);
}

absl::StatusOr<std::string> Scheduler::SubmitJobLocked(const ferry::v1::JobSpec& spec) {
  JobRecord record;
  do {
    record.id = NewJobId();
  } while (jobs_.count(record.id) > 0);
  record.spec = spec;
  record.state = ferry::v1::JOB_STATE_PENDING;
  record.create_time = record.update_time = options_.clock();
  FERRY_RETURN_IF_ERROR(store_->CreateJob(&record));
  // NormalizeJobSpec took any password out of the URIs and checked that they parse.
  FERRY_LOG(Info) << "job " << record.id << " submitted: " << spec.source().uri() << " -> "
                  << spec.target().uri();
  std::string id = record.id;
  jobs_[id].record = std::move(record);
  job_order_.push_back(id);
  return id;
}

std::vector<std::string> Scheduler::JobsToPlan() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const std::string& id : job_order_) {
    const JobRecord& record = jobs_.at(id).record;
    if (!record.planned && record.state == ferry::v1::JOB_STATE_PENDING) out.push_back(id);
  }
  return out;
}

absl::StatusOr<ferry::v1::JobSpec> Scheduler::SpecForPlanning(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  FERRY_ASSIGN_OR_RETURN(JobEntry * job, FindJobLocked(job_id));
  if (job->record.planned || job->record.state != ferry::v1::JOB_STATE_PENDING) {
    return absl::FailedPreconditionError(absl::StrCat("job ", job_id, " no longer needs planning (",
                                                      ferry::v1::JobState_Name(job->record.state),
                                                      job->record.planned ? ", planned)" : ")"));
  }
  return job->record.spec;
}

absl::Status Scheduler::SetPlan(const std::string& job_id, const PlanResult& plan) {
  absl::MutexLock lock(&mu_);
  FERRY_ASSIGN_OR_RETURN(JobEntry * job, FindJobLocked(job_id));
  if (job->record.planned) {
    return absl::FailedPreconditionError(absl::StrCat("job ", job_id, " is already planned"));
  }
  std::vector<ShardRecord> shards;
  for (const ferry::v1::ShardRef& planned : plan.shards) {
    ShardRecord& shard = shards.emplace_back();
    shard.job_id = job_id;
    shard.shard = planned;
    if (planned.reverse() && job->record.spec.live()) {
      // A live job's reverse shards run in rescans only (scheduler_live.cc).
      shard.state = ferry::v1::SHARD_STATE_DONE;
      shard.checkpoint.set_done(true);
    }
    // The target processes as preflight saw them: the agents compare every connection with
    // these (agent/target_guard.h), so a target that restarts or evicts fails the job.
    for (const TargetNodeFacts& node : plan.target_nodes) {
      ferry::v1::TargetNode& out = *shard.checkpoint.add_target_nodes();
      out.set_address(node.address);
      out.set_run_id(node.run_id);
      out.set_evicted_keys(node.evicted_keys);
    }
  }
  JobRecord updated = job->record;
  updated.planned = true;
  updated.estimated_keys = plan.estimated_keys;
  if (plan.parallel > 0 && updated.spec.parallel() == 0) updated.spec.set_parallel(plan.parallel);
  for (const std::string& warning : plan.warnings) {
    updated.warnings.push_back(ScrubSecrets(warning, updated.spec));
  }
  updated.update_time = options_.clock();
  FERRY_RETURN_IF_ERROR(store_->SavePlan(updated, &shards));
  job->record = std::move(updated);
  job->planning_retry.clear();
  for (ShardRecord& shard : shards) {
    job->shard_ids.push_back(shard.id);
    if (shard.state == ferry::v1::SHARD_STATE_PENDING) job->pending.insert(shard.id);
    shards_[shard.id].record = std::move(shard);
  }
  BuildLiveGroupsLocked(*job);
  FERRY_LOG(Info) << "job " << job_id << " planned: " << plan.shards.size() << " shards, about "
                  << plan.estimated_keys << " keys";
  MaybeCompleteJobLocked(*job);
  DispatchLocked();
  return absl::OkStatus();
}

absl::Status Scheduler::FailPlanning(const std::string& job_id, const absl::Status& error,
                                     absl::string_view context) {
  absl::MutexLock lock(&mu_);
  FERRY_ASSIGN_OR_RETURN(JobEntry * job, FindJobLocked(job_id));
  job->planning_retry.clear();
  if (job->record.state != ferry::v1::JOB_STATE_PENDING) return absl::OkStatus();
  return SetJobStateLocked(*job, ferry::v1::JOB_STATE_FAILED,
                           ScrubSecrets(absl::StrCat("planning failed", context.empty() ? "" : " ",
                                                     context, ": ", error.message()),
                                        job->record.spec),
                           error.code());
}

absl::Status Scheduler::SetPlanningRetry(const std::string& job_id, const std::string& reason) {
  absl::MutexLock lock(&mu_);
  FERRY_ASSIGN_OR_RETURN(JobEntry * job, FindJobLocked(job_id));
  job->planning_retry = ScrubSecrets(reason, job->record.spec);
  return absl::OkStatus();
}

ferry::v1::Job Scheduler::SnapshotLocked(const JobEntry& job, bool include_shards) {
  const absl::Time now = options_.clock();
  ferry::v1::Job out;
  out.set_id(job.record.id);
  *out.mutable_spec() = RedactedSpec(job.record.spec);
  out.set_state(job.record.state);
  out.set_error(job.record.error);
  out.set_error_code(job.record.error_code);
  for (const std::string& warning : job.record.warnings) out.add_warnings(warning);
  // A job cancelled or paused while it waited says nothing of a retry that will not happen.
  if (job.record.state == ferry::v1::JOB_STATE_PENDING && !job.record.planned) {
    out.set_planning_retry(job.planning_retry);
  }
  *out.mutable_create_time() = ToTimestamp(job.record.create_time);
  *out.mutable_update_time() = ToTimestamp(job.record.update_time);

  ferry::v1::JobProgress& progress = *out.mutable_progress();
  *progress.mutable_counters() = job.totals;
  // The agents count failed writes, and SCAN returns some keys twice: show distinct keys. A
  // verify job's listed keys are mostly differences, counted by kind: its `failed` stays the
  // agents' count of keys that could not be compared.
  if (job.record.spec.kind() != ferry::v1::JOB_KIND_VERIFY) {
    progress.mutable_counters()->set_failed(job.failed_keys);
  }
  progress.set_shards_total(static_cast<int32_t>(job.shard_ids.size()));
  progress.set_shards_running(job.running);
  progress.set_estimated_keys(job.record.estimated_keys);
  for (int64_t id : job.shard_ids) {
    const ShardEntry& shard = shards_.at(id);
    const ShardRecord& r = shard.record;
    if (r.shard.watch()) {
      // A live job's watches never finish: shown in Job.live, not counted as shards.
      progress.set_shards_total(progress.shards_total() - 1);
    }
    if (r.state == ferry::v1::SHARD_STATE_DONE)
      progress.set_shards_done(progress.shards_done() + 1);
    if (r.state == ferry::v1::SHARD_STATE_FAILED) {
      progress.set_shards_failed(progress.shards_failed() + 1);
    }
    if (!include_shards) continue;
    ferry::v1::ShardStatus& status = *out.add_shards();
    *status.mutable_shard() = r.shard;
    status.set_state(r.state);
    *status.mutable_counters() = r.checkpoint.counters();
    status.set_cursor(r.checkpoint.cursor());
    status.set_agent_id(r.agent_id);
    status.set_error(r.error);
  }
  // Rates over the samples of the last window, measured against the totals now.
  double keys_per_second = 0;
  for (const RateSample& sample : job.samples) {
    if (now - sample.time > kRateWindow) continue;
    const double seconds = absl::ToDoubleSeconds(now - sample.time);
    if (seconds >= 1) {
      keys_per_second = static_cast<double>(job.totals.scanned() - sample.scanned) / seconds;
      progress.set_bytes_per_second(static_cast<double>(job.totals.bytes() - sample.bytes) /
                                    seconds);
    }
    break;
  }
  progress.set_keys_per_second(keys_per_second);
  double eta = -1;
  if (IsEnded(job.record.state)) {
    eta = 0;
  } else if (keys_per_second > 0 && job.record.estimated_keys > 0) {
    const uint64_t scanned = job.totals.scanned();
    const uint64_t left =
        job.record.estimated_keys > scanned ? job.record.estimated_keys - scanned : 0;
    eta = static_cast<double>(left) / keys_per_second;
  }
  progress.set_eta_seconds(eta);
  FillLiveLocked(job, out);
  return out;
}

absl::StatusOr<ferry::v1::Job> Scheduler::GetJob(const std::string& job_id, bool include_shards) {
  absl::MutexLock lock(&mu_);
  FERRY_ASSIGN_OR_RETURN(JobEntry * job, FindJobLocked(job_id));
  return SnapshotLocked(*job, include_shards);
}

std::vector<ferry::v1::Job> Scheduler::ListJobs() {
  absl::MutexLock lock(&mu_);
  std::vector<ferry::v1::Job> out;
  for (auto it = job_order_.rbegin(); it != job_order_.rend(); ++it) {
    out.push_back(SnapshotLocked(jobs_.at(*it), /*include_shards=*/false));
  }
  return out;
}

absl::StatusOr<ferry::v1::Job> Scheduler::CancelJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  FERRY_ASSIGN_OR_RETURN(JobEntry * job, FindJobLocked(job_id));
  if (IsEnded(job->record.state)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job_id, " has already ended (", ferry::v1::JobState_Name(job->record.state), ")"));
  }
  FERRY_RETURN_IF_ERROR(SetJobStateLocked(*job, ferry::v1::JOB_STATE_CANCELLED, ""));
  RevokeJobLeasesLocked(*job, "job cancelled");
  return SnapshotLocked(*job, false);
}

absl::StatusOr<ferry::v1::Job> Scheduler::PauseJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  FERRY_ASSIGN_OR_RETURN(JobEntry * job, FindJobLocked(job_id));
  if (job->record.state == ferry::v1::JOB_STATE_PAUSED) return SnapshotLocked(*job, false);
  if (!IsRunnable(job->record.state)) {
    return absl::FailedPreconditionError(absl::StrCat("job ", job_id, " cannot be paused in state ",
                                                      ferry::v1::JobState_Name(job->record.state)));
  }
  FERRY_RETURN_IF_ERROR(SetJobStateLocked(*job, ferry::v1::JOB_STATE_PAUSED, ""));
  RevokeJobLeasesLocked(*job, "job paused");
  return SnapshotLocked(*job, false);
}

absl::StatusOr<ferry::v1::Job> Scheduler::ResumeJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  FERRY_ASSIGN_OR_RETURN(JobEntry * job, FindJobLocked(job_id));
  const ferry::v1::JobState state = job->record.state;
  if (IsRunnable(state)) return SnapshotLocked(*job, false);
  if (state != ferry::v1::JOB_STATE_PAUSED && state != ferry::v1::JOB_STATE_FAILED) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job_id, " cannot be resumed in state ", ferry::v1::JobState_Name(state)));
  }
  // Failed shards go back to the queue at their checkpoints.
  std::vector<ShardRecord> retried;
  bool started = false;
  for (int64_t id : job->shard_ids) {
    const ShardRecord& r = shards_.at(id).record;
    started = started || r.epoch > 0;
    if (r.state != ferry::v1::SHARD_STATE_FAILED) continue;
    ShardRecord& updated = retried.emplace_back(r);
    updated.state = ferry::v1::SHARD_STATE_PENDING;
    updated.error.clear();
  }
  std::vector<const ShardRecord*> pointers;
  for (const ShardRecord& r : retried) pointers.push_back(&r);
  FERRY_RETURN_IF_ERROR(store_->UpdateShards(pointers));
  for (ShardRecord& r : retried) {
    job->pending.insert(r.id);
    shards_.at(r.id).record = std::move(r);
  }
  FERRY_RETURN_IF_ERROR(SetJobStateLocked(
      *job, started ? ferry::v1::JOB_STATE_RUNNING : ferry::v1::JOB_STATE_PENDING, ""));
  MaybeCompleteJobLocked(*job);
  DispatchLocked();
  return SnapshotLocked(*job, false);
}

absl::StatusOr<ferry::v1::ListFailedKeysResponse> Scheduler::ListFailedKeys(
    const ferry::v1::ListFailedKeysRequest& request) {
  uint64_t total = 0;
  {
    absl::MutexLock lock(&mu_);
    FERRY_ASSIGN_OR_RETURN(JobEntry * job, FindJobLocked(request.job_id()));
    total = job->failed_keys;
  }
  int64_t after_id = 0;
  if (!request.page_token().empty() && !absl::SimpleAtoi(request.page_token(), &after_id)) {
    return absl::InvalidArgumentError("invalid page_token");
  }
  int page_size = request.page_size() > 0 ? request.page_size() : kDefaultFailedKeysPage;
  page_size = std::min(page_size, kMaxFailedKeysPage);
  FERRY_ASSIGN_OR_RETURN(std::vector<StoredFailedKey> keys,
                         store_->ListFailedKeys(request.job_id(), after_id, page_size));
  ferry::v1::ListFailedKeysResponse response;
  for (const StoredFailedKey& key : keys) {
    ferry::v1::FailedKey& out = *response.add_keys();
    out.set_key(key.key);
    out.set_reason(key.reason);
  }
  if (static_cast<int>(keys.size()) == page_size) {
    response.set_next_page_token(absl::StrCat(keys.back().id));
  }
  response.set_total(total);
  return response;
}

}  // namespace ferry::server
