// Live jobs (DESIGN.md, "Live sync without lost writes"): each watch shard subscribes to its
// node's keyspace notifications; the node's snapshot shards are leased only once it has; its
// dirty keys are applied only once a pass over the node that began after the subscription is
// complete; a gap (a new subscription after the node was read, or one the watcher found) means
// another pass, a rescan that compares and fixes. The cutover waits for every watcher's marker.

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "proto/wire/job_defaults.h"
#include "proto/wire/shard.h"
#include "server/scheduler.h"
#include "server/scheduler_internal.h"

namespace ferry::server {
namespace {

// Rounds of markers in a row in which some node saw writes after its marker before the cutover
// gives up: the writers are still running.
constexpr int kMaxRoundsWithWrites = 5;

// The watch's address for messages.
std::string NodeName(const ferry::v1::ShardRef& watch, const ferry::v1::JobSpec& spec) {
  return absl::StrCat(watch.source_node().empty() ? spec.source().uri() : watch.source_node(),
                      " db ", watch.source_db());
}

bool Complete(const ShardRecord& r) { return r.state == ferry::v1::SHARD_STATE_DONE; }

}  // namespace

void Scheduler::BuildLiveGroupsLocked(JobEntry& job) {
  job.live_groups.clear();
  job.group_of_forward.clear();
  if (!job.record.spec.live()) return;
  for (int64_t id : job.shard_ids) {
    const ShardRecord& r = shards_.at(id).record;
    if (!r.shard.watch()) continue;
    LiveGroup& group = job.live_groups.emplace_back();
    group.watch = id;
  }
  for (LiveGroup& group : job.live_groups) {
    const ferry::v1::ShardRef& watch = shards_.at(group.watch).record.shard;
    for (int64_t id : job.shard_ids) {
      const ShardRecord& r = shards_.at(id).record;
      if (r.shard.watch()) continue;
      if (r.shard.reverse()) {
        // Reverse shards walk the target db `source_db`, checked against source db `target_db`.
        if (r.shard.target_db() == watch.source_db()) group.reverse.push_back(id);
      } else if (r.shard.source_node() == watch.source_node() &&
                 r.shard.source_db() == watch.source_db()) {
        group.forward.push_back(id);
        job.group_of_forward[id] = static_cast<size_t>(&group - job.live_groups.data());
        // A shard leased before (by this process or an earlier one): the node was read, so the
        // next subscription follows a gap.
        if (r.epoch > 0) group.began = true;
      }
    }
  }
}

Scheduler::LiveGroup* Scheduler::WatchGroupLocked(JobEntry& job, int64_t shard_id) {
  for (LiveGroup& group : job.live_groups) {
    if (group.watch == shard_id) return &group;
  }
  return nullptr;
}

bool Scheduler::MayGrantLocked(JobEntry& job, const ShardEntry& shard) {
  auto it = job.group_of_forward.find(shard.record.id);
  return it == job.group_of_forward.end() || job.live_groups[it->second].subscribed;
}

void Scheduler::OnShardGrantedLocked(JobEntry& job, const ShardEntry& shard) {
  auto it = job.group_of_forward.find(shard.record.id);
  if (it != job.group_of_forward.end()) job.live_groups[it->second].began = true;
}

void Scheduler::OnWatchReportLocked(JobEntry& job, const ShardEntry& watch) {
  LiveGroup* group = WatchGroupLocked(job, watch.record.id);
  if (group == nullptr) return;
  const ferry::v1::LiveStatus& live = watch.record.checkpoint.live();
  const std::string node = NodeName(watch.record.shard, job.record.spec);
  if (watch.record.epoch != group->lease_epoch) {
    group->lease_epoch = watch.record.epoch;
    group->subscriptions = 0;
    group->lease_gaps = 0;
  }
  if (live.gaps() > group->lease_gaps) {
    group->gaps += live.gaps() - group->lease_gaps;
    group->lease_gaps = live.gaps();
    group->last_gap = live.last_gap();
    group->needs_rescan = true;
    group->applying = false;
    FERRY_LOG(Warning) << "job " << job.record.id << ": " << node
                       << ": notifications may have been lost (" << live.last_gap()
                       << "); the node is rescanned";
  }
  if (live.subscriptions() > group->subscriptions) {
    if (group->subscriptions == 0 && group->began && live.gaps() == 0) {
      // A new watcher of a node already read: what was written while none listened is unknown.
      group->gaps += 1;
      group->last_gap =
          "the watch started again (its agent or the controller restarted, or the "
          "lease was lost)";
      group->needs_rescan = true;
      group->applying = false;
      FERRY_LOG(Warning) << "job " << job.record.id << ": " << node << ": " << group->last_gap
                         << "; the node is rescanned";
    }
    group->subscriptions = live.subscriptions();
  }
  group->subscribed = live.subscribed();
  if (!group->subscribed) group->applying = false;
  EvaluateLiveLocked(job);
}

void Scheduler::OnWatchLostLocked(JobEntry& job, const ShardEntry& watch) {
  LiveGroup* group = WatchGroupLocked(job, watch.record.id);
  if (group == nullptr) return;
  group->subscribed = false;
  group->applying = false;
}

void Scheduler::SendLiveControlLocked(JobEntry& job, const LiveGroup& group) {
  const ShardRecord& watch = shards_.at(group.watch).record;
  if (watch.state != ferry::v1::SHARD_STATE_LEASED) return;
  ferry::v1::ControllerMessage message;
  ferry::v1::ControllerMessage::LiveControl& control = *message.mutable_live_control();
  control.set_lease_id(watch.lease_id);
  control.set_apply(group.applying);
  control.set_subscription(group.subscriptions);
  control.set_cutover_seq(job.cutover.active ? job.cutover.seq : 0);
  SendLocked(watch.agent_id, message);
}

void Scheduler::StartRescanLocked(JobEntry& job, LiveGroup& group) {
  group.needs_rescan = false;
  group.applying = false;
  SendLiveControlLocked(job, group);
  uint32_t pass = 0;
  std::vector<int64_t> ids = group.forward;
  ids.insert(ids.end(), group.reverse.begin(), group.reverse.end());
  for (int64_t id : ids) pass = std::max(pass, shards_.at(id).record.checkpoint.pass());
  pass += 1;
  for (int64_t id : ids) {
    ShardEntry& shard = shards_.at(id);
    if (!Complete(shard.record)) continue;  // A reverse shard another node's rescan runs.
    ShardRecord updated = shard.record;
    updated.state = ferry::v1::SHARD_STATE_PENDING;
    // A new walk from the start; the counters go on adding up, the target guard stays.
    ferry::v1::Checkpoint checkpoint;
    *checkpoint.mutable_counters() = updated.checkpoint.counters();
    *checkpoint.mutable_target_nodes() = updated.checkpoint.target_nodes();
    checkpoint.set_pass(pass);
    updated.checkpoint = std::move(checkpoint);
    if (absl::Status status = ApplyCheckpointLocked(shard, updated, {}); !status.ok()) {
      FERRY_LOG(Error) << "job " << job.record.id << ": cannot start a rescan of "
                       << wire::ShardName(updated.shard) << ": " << status;
    }
  }
  FERRY_LOG(Info) << "job " << job.record.id << ": rescan " << pass << " of "
                  << NodeName(shards_.at(group.watch).record.shard, job.record.spec) << " ("
                  << ids.size() << " shards)";
}

void Scheduler::EvaluateLiveLocked(JobEntry& job) {
  if (!job.record.spec.live() || !job.record.planned || !IsRunnable(job.record.state)) return;
  bool all_applying = !job.live_groups.empty();
  for (LiveGroup& group : job.live_groups) {
    if (group.subscribed) {
      bool complete = true;
      for (int64_t id : group.forward) complete = complete && Complete(shards_.at(id).record);
      for (int64_t id : group.reverse) complete = complete && Complete(shards_.at(id).record);
      if (complete && group.needs_rescan) {
        StartRescanLocked(job, group);
      } else if (complete && !group.applying) {
        group.applying = true;
        SendLiveControlLocked(job, group);
        FERRY_LOG(Info) << "job " << job.record.id << ": "
                        << NodeName(shards_.at(group.watch).record.shard, job.record.spec)
                        << " is in sync: dirty keys are applied";
      }
    }
    all_applying = all_applying && group.applying;
  }
  if (all_applying && job.record.state == ferry::v1::JOB_STATE_RUNNING) {
    (void)SetJobStateLocked(job, ferry::v1::JOB_STATE_LIVE, "");
  }
  CheckCutoverLocked(job);
}

absl::StatusOr<ferry::v1::Job> Scheduler::CutoverJob(const ferry::v1::CutoverJobRequest& request) {
  absl::MutexLock lock(&mu_);
  FERRY_ASSIGN_OR_RETURN(JobEntry * job, FindJobLocked(request.job_id()));
  if (!job->record.spec.live()) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", request.job_id(), " is not a live job: it has no cutover"));
  }
  if (job->record.state == ferry::v1::JOB_STATE_CUTOVER) return SnapshotLocked(*job, false);
  if (job->record.state != ferry::v1::JOB_STATE_LIVE) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", request.job_id(), " is ", ferry::v1::JobState_Name(job->record.state),
                     ": a cutover needs the snapshot done and the job LIVE (see ferry status)"));
  }
  if (!ferry::v1::VerifyMode_IsValid(request.verify_mode())) {
    return absl::InvalidArgumentError("invalid verify_mode");
  }
  CutoverState& cutover = job->cutover;
  cutover.active = true;
  cutover.seq += 1;
  cutover.rounds_with_writes = 0;
  cutover.deadline = options_.clock() + absl::Seconds(request.timeout_seconds() > 0
                                                          ? request.timeout_seconds()
                                                          : wire::kDefaultCutoverTimeoutSeconds);
  cutover.mode = request.has_verify_mode() ? request.verify_mode() : ferry::v1::VERIFY_MODE_QUICK;
  cutover.verify = !request.no_verify();
  job->record.live.clear_cutover_error();
  FERRY_RETURN_IF_ERROR(SetJobStateLocked(*job, ferry::v1::JOB_STATE_CUTOVER, ""));
  for (const LiveGroup& group : job->live_groups) SendLiveControlLocked(*job, group);
  return SnapshotLocked(*job, false);
}

void Scheduler::CheckCutoverLocked(JobEntry& job) {
  if (job.record.state != ferry::v1::JOB_STATE_CUTOVER || !job.cutover.active) return;
  bool reported = true;
  std::vector<std::string> writing, waiting;
  for (const LiveGroup& group : job.live_groups) {
    const ShardRecord& watch = shards_.at(group.watch).record;
    const ferry::v1::LiveStatus& live = watch.checkpoint.live();
    const std::string node = NodeName(watch.shard, job.record.spec);
    if (!group.applying || group.needs_rescan || !group.subscribed ||
        live.cutover_seq() != job.cutover.seq || live.dirty_keys() > 0) {
      reported = false;
      waiting.push_back(group.applying ? node : absl::StrCat(node, " (not in sync)"));
      continue;
    }
    if (live.events_after_marker() > 0) {
      writing.push_back(absl::StrCat(node, ": ", live.events_after_marker(), " writes"));
    }
  }
  const bool late = options_.clock() >= job.cutover.deadline;
  if (reported && writing.empty()) {
    job.cutover.active = false;
    if (job.cutover.verify) {
      ferry::v1::JobSpec spec = job.record.spec;
      spec.set_live(false);
      spec.set_kind(ferry::v1::JOB_KIND_VERIFY);
      spec.set_verify_mode(job.cutover.mode);
      absl::StatusOr<std::string> verify = SubmitJobLocked(spec);
      if (verify.ok()) {
        job.record.live.set_verify_job_id(*verify);
      } else {
        job.record.live.set_cutover_error(absl::StrCat(
            "converged, but the verification could not be submitted: ", verify.status().message()));
      }
    }
    FERRY_LOG(Info) << "job " << job.record.id << ": cutover converged on "
                    << job.live_groups.size() << " watched nodes";
    (void)SetJobStateLocked(job, ferry::v1::JOB_STATE_CUTOVER_READY, "");
    RevokeJobLeasesLocked(job, "cutover done");
    return;
  }
  if (reported) {
    // Every marker came back, but writes arrived after some: ask again, a few times.
    job.cutover.rounds_with_writes += 1;
    if (job.cutover.rounds_with_writes >= kMaxRoundsWithWrites || late) {
      EndCutoverLocked(job, absl::StrCat("writes go on after the cutover markers (",
                                         absl::StrJoin(writing, ", "),
                                         " in the last round): stop every writer, then cut "
                                         "over again"));
      return;
    }
    job.cutover.seq += 1;
    for (const LiveGroup& group : job.live_groups) SendLiveControlLocked(job, group);
    return;
  }
  if (late) {
    EndCutoverLocked(
        job, absl::StrCat("the cutover did not converge in time: still waiting for ",
                          absl::StrJoin(waiting, ", "), writing.empty() ? "" : "; writes go on on ",
                          absl::StrJoin(writing, ", ")));
  }
}

void Scheduler::EndCutoverLocked(JobEntry& job, std::string error) {
  job.cutover.active = false;
  FERRY_LOG(Info) << "job " << job.record.id << ": cutover abandoned: " << error;
  job.record.live.set_cutover_error(std::move(error));
  (void)SetJobStateLocked(job, ferry::v1::JOB_STATE_LIVE, "");
  for (const LiveGroup& group : job.live_groups) SendLiveControlLocked(job, group);
}

void Scheduler::FillLiveLocked(const JobEntry& job, ferry::v1::Job& out) {
  if (!job.record.spec.live()) return;
  ferry::v1::LiveProgress& live = *out.mutable_live();
  live.set_cutover_error(job.record.live.cutover_error());
  live.set_verify_job_id(job.record.live.verify_job_id());
  bool in_sync = !job.live_groups.empty();
  for (const LiveGroup& group : job.live_groups) {
    const ShardRecord& watch = shards_.at(group.watch).record;
    ferry::v1::NodeLive& node = *live.add_nodes();
    node.set_node(watch.shard.source_node().empty() ? job.record.spec.source().uri()
                                                    : watch.shard.source_node());
    node.set_db(watch.shard.source_db());
    *node.mutable_status() = watch.checkpoint.live();
    if (node.status().last_gap().empty()) node.mutable_status()->set_last_gap(group.last_gap);
    uint32_t pass = 0;
    bool complete = true;
    for (int64_t id : group.forward) {
      pass = std::max(pass, shards_.at(id).record.checkpoint.pass());
      complete = complete && Complete(shards_.at(id).record);
    }
    node.set_rescans(pass);
    const bool leased = watch.state == ferry::v1::SHARD_STATE_LEASED;
    // In sync once the watcher itself says it applies (its report follows the LiveControl).
    const bool node_in_sync = leased && group.subscribed && group.applying && !group.needs_rescan &&
                              watch.checkpoint.live().applying();
    node.set_in_sync(node_in_sync);
    node.set_state(IsEnded(job.record.state)        ? "stopped"
                   : !leased                        ? "waiting for a watcher"
                   : !group.subscribed              ? "subscribing"
                   : node_in_sync                   ? "in sync"
                   : pass > 0 || group.needs_rescan ? "rescanning"
                                                    : (complete ? "catching up" : "snapshot"));
    in_sync = in_sync && node_in_sync;
    const ferry::v1::LiveStatus& s = node.status();
    live.set_lag_ms(std::max(live.lag_ms(), s.oldest_dirty_ms()));
    live.set_events_per_second(live.events_per_second() + s.events_per_second());
    live.set_dirty_keys(live.dirty_keys() + s.dirty_keys());
    live.set_dirty_bytes(live.dirty_bytes() + s.dirty_bytes());
    live.set_gaps(live.gaps() + std::max<uint64_t>(group.gaps, s.gaps()));
    live.set_rescans(live.rescans() + pass);
    live.set_applied(live.applied() + s.applied());
    live.set_deleted(live.deleted() + s.deleted());
  }
  live.set_in_sync(in_sync);
}

}  // namespace ferry::server
