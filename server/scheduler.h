#pragma once

// Who copies what: the in-memory view of jobs, shards and agents, backed by the JobStore
// (DESIGN.md, Lease). Shards are leased to agents with an epoch (incremented on each grant) and
// an expiry (renewed by any message from the agent); a report with an old epoch is refused, so a
// shard is never owned twice. A checkpoint is committed to the store before its Ack is sent.

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/metrics/registry.h"
#include "ferry/v1/ferry.pb.h"
#include "proto/wire/job_defaults.h"
#include "server/job_store.h"
#include "server/metrics.h"
#include "server/plan_types.h"
#include "server/scheduler_internal.h"

namespace ferry::server {

// The write side of one agent's stream. Send() queues and returns at once; it never calls back
// into the Scheduler (the Scheduler calls it with its own lock held).
class AgentSender {
 public:
  virtual ~AgentSender() = default;
  virtual void Send(const ferry::v1::ControllerMessage& message) = 0;
};

struct SchedulerOptions {
  // How often agents send heartbeats (told to them at registration).
  absl::Duration heartbeat_interval = absl::Seconds(1);
  // Leases of an agent not heard from for this long go back to the queue; so does a revoked
  // lease not handed back within it.
  absl::Duration lease_timeout = absl::Seconds(15);
  // Defaults for a JobSpec's zero values.
  int default_parallel = wire::kDefaultParallelPerNode;
  int default_batch_keys = wire::kDefaultBatchKeys;
  // The time source (tests use a fake one).
  std::function<absl::Time()> clock = [] { return absl::Now(); };
  // Where lease and store-write metrics go (server/metrics.h); null: a registry of its own.
  metrics::Registry* metrics = nullptr;
};

// Thread-safe: every public method may be called from any thread.
class Scheduler {
 public:
  // Loads every job and shard of `store` (which must outlive the scheduler). Shards that were
  // leased go back to pending at their checkpoints: their agents were connected to a previous
  // controller process.
  static absl::StatusOr<std::unique_ptr<Scheduler>> Create(JobStore* store,
                                                           SchedulerOptions options);
  ~Scheduler();

  // --- Jobs (the Controller service) ---

  // Stores a new PENDING job; `spec` must have passed NormalizeJobSpec. Returns its id.
  absl::StatusOr<std::string> SubmitJob(const ferry::v1::JobSpec& spec) ABSL_LOCKS_EXCLUDED(mu_);
  // Ids of jobs that need planning (not planned, PENDING), in submission order.
  std::vector<std::string> JobsToPlan() ABSL_LOCKS_EXCLUDED(mu_);
  // The spec of a job, with passwords, for the planner. FAILED_PRECONDITION when the job no
  // longer needs planning (cancelled, paused or planned since it was queued: a paused job is
  // planned when resumed).
  absl::StatusOr<ferry::v1::JobSpec> SpecForPlanning(const std::string& job_id)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Stores the plan and starts leasing its shards (unless the job was paused or ended since).
  absl::Status SetPlan(const std::string& job_id, const PlanResult& plan) ABSL_LOCKS_EXCLUDED(mu_);
  // Planning failed: the job becomes FAILED with "planning failed[ <context>]: <error>"
  // (passwords scrubbed) and the error's code.
  absl::Status FailPlanning(const std::string& job_id, const absl::Status& error,
                            absl::string_view context = "") ABSL_LOCKS_EXCLUDED(mu_);
  // Planning will be tried again: `reason` (passwords scrubbed) is the job's planning_retry
  // while it stays PENDING and unplanned. Kept in memory only: a restarted controller plans
  // again from the first attempt.
  absl::Status SetPlanningRetry(const std::string& job_id, const std::string& reason)
      ABSL_LOCKS_EXCLUDED(mu_);

  // NOT_FOUND for an unknown id. Answers never contain passwords.
  absl::StatusOr<ferry::v1::Job> GetJob(const std::string& job_id, bool include_shards)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Newest first, without shards.
  std::vector<ferry::v1::Job> ListJobs() ABSL_LOCKS_EXCLUDED(mu_);
  // Cancel: any state that has not ended -> CANCELLED; leases are revoked.
  absl::StatusOr<ferry::v1::Job> CancelJob(const std::string& job_id) ABSL_LOCKS_EXCLUDED(mu_);
  // PENDING or RUNNING -> PAUSED; leases are revoked. Pausing a paused job is a no-op.
  absl::StatusOr<ferry::v1::Job> PauseJob(const std::string& job_id) ABSL_LOCKS_EXCLUDED(mu_);
  // PAUSED -> RUNNING (PENDING if never planned); FAILED -> the same, with its failed shards
  // back in the queue at their checkpoints (an unplanned job is planned again).
  absl::StatusOr<ferry::v1::Job> ResumeJob(const std::string& job_id) ABSL_LOCKS_EXCLUDED(mu_);
  // Live jobs (scheduler_live.cc): LIVE -> CUTOVER; the job becomes CUTOVER_READY once every
  // watcher's marker came back with no write after it and its dirty keys were drained, or goes
  // back to LIVE with Job.live.cutover_error when that does not happen within the timeout or
  // writes keep arriving. FAILED_PRECONDITION unless LIVE.
  absl::StatusOr<ferry::v1::Job> CutoverJob(const ferry::v1::CutoverJobRequest& request)
      ABSL_LOCKS_EXCLUDED(mu_);
  // A page of the job's failed keys after `page_token` (empty for the first page).
  absl::StatusOr<ferry::v1::ListFailedKeysResponse> ListFailedKeys(
      const ferry::v1::ListFailedKeysRequest& request) ABSL_LOCKS_EXCLUDED(mu_);

  // --- Agents (the AgentHub service) ---

  // Adds a connected agent, sends it `Registered`, then leases it work. Returns its id.
  std::string RegisterAgent(const std::string& name, int slots, const std::string& peer,
                            std::shared_ptr<AgentSender> sender) ABSL_LOCKS_EXCLUDED(mu_);
  // The agent's stream ended: its leases go back to the queue at their last checkpoints.
  void DisconnectAgent(const std::string& agent_id) ABSL_LOCKS_EXCLUDED(mu_);
  // Handles one message of a registered agent (any message renews its leases). Sends `Ack` when
  // a report was committed, `Revoke` when it was refused (FAILED_PRECONDITION, stale lease).
  absl::Status HandleAgentMessage(const std::string& agent_id,
                                  const ferry::v1::AgentMessage& message) ABSL_LOCKS_EXCLUDED(mu_);
  // Handles messages of registered agents as HandleAgentMessage does, in order, with every store
  // write they cause in one commit (scheduler_batch.cc): the Acks, Leases and Revokes they cause
  // are sent once it succeeded. Returns one status per message.
  using AgentBatch = std::vector<std::pair<std::string, const ferry::v1::AgentMessage*>>;
  std::vector<absl::Status> HandleAgentMessages(const AgentBatch& batch) ABSL_LOCKS_EXCLUDED(mu_);
  // Takes back the leases of agents silent for the lease timeout and revoked leases never
  // returned, at their last checkpoints. Returns how many.
  int ExpireLeases(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<ferry::v1::AgentInfo> ListAgents() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct ShardEntry {
    ShardRecord record;
    absl::Time expiry;      // When the lease dies unless renewed; leased shards only.
    bool revoking = false;  // Revoke sent; waiting for Returned.
    int retries = 0;        // Retryable failures in a row (not persisted).
    RateShare rate_share;   // Last sent to the agent.
  };
  struct RateSample {
    absl::Time time;
    uint64_t scanned = 0;
    uint64_t bytes = 0;
  };
  // A live job's watch of one source node and database, and the shards whose passes it waits
  // for before it may apply dirty keys (scheduler_live.cc).
  struct LiveGroup {
    int64_t watch = 0;
    std::vector<int64_t> forward;  // The node's snapshot shards of the database.
    std::vector<int64_t> reverse;  // The reverse shards of its target database (shared).
    // The watch lease whose reports the next three count, and what they said so far.
    uint64_t lease_epoch = 0;
    uint64_t subscriptions = 0;
    uint64_t lease_gaps = 0;
    bool subscribed = false;    // Confirmed, no gap since: its shards may be leased.
    bool began = false;         // Some forward shard was leased: a new watch is a gap.
    bool needs_rescan = false;  // A gap: another pass once the running one is complete.
    bool applying = false;      // Told to apply (the last pass began after its subscription).
    uint64_t gaps = 0;          // Seen by this controller process.
    std::string last_gap;
  };
  struct CutoverState {
    bool active = false;
    uint64_t seq = 0;  // Of the markers asked for last.
    absl::Time deadline;
    int rounds_with_writes = 0;  // Rounds in a row in which some node saw events after its marker.
    ferry::v1::VerifyMode mode = ferry::v1::VERIFY_MODE_QUICK;
    bool verify = true;
  };
  struct JobEntry {
    JobRecord record;
    std::vector<int64_t> shard_ids;               // Plan order.
    std::set<int64_t> pending;                    // Shards waiting for an agent.
    std::map<std::string, int> running_per_node;  // Leased shards per source node.
    int running = 0;                              // Leased shards.
    ferry::v1::Counters totals;                   // Sum of the shards' checkpoint counters.
    uint64_t failed_keys = 0;                     // Rows in the store's failed_keys.
    std::deque<RateSample> samples;               // For keys/s and bytes/s.
    std::vector<LiveGroup> live_groups;           // Live jobs: one per watch shard.
    std::map<int64_t, size_t> group_of_forward;   // Forward shard id -> its live_groups index.
    CutoverState cutover;
    std::string planning_retry;  // Job.planning_retry: why planning waits (not persisted).
  };
  struct AgentEntry {
    std::string id;
    std::string name;
    std::string peer;
    int slots = 0;
    absl::Time connect_time;
    absl::Time last_seen;
    bool draining = false;  // Said so in a Returned: lease it nothing more.
    std::set<int64_t> shards;
    int watches = 0;  // Of `shards`, live jobs' watches, which take no slot.
    std::shared_ptr<AgentSender> sender;
  };

  Scheduler(JobStore* store, SchedulerOptions options);
  absl::Status LoadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Jobs (scheduler_jobs.cc).
  absl::StatusOr<JobEntry*> FindJobLocked(const std::string& job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `code` says what kind of error `error` is (Job.error_code), so clients can pick an exit code.
  absl::Status SetJobStateLocked(JobEntry& job, ferry::v1::JobState state, std::string error,
                                 absl::StatusCode code = absl::StatusCode::kOk)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RevokeJobLeasesLocked(JobEntry& job, absl::string_view reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeCompleteJobLocked(JobEntry& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  ferry::v1::Job SnapshotLocked(const JobEntry& job, bool include_shards)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddSampleLocked(JobEntry& job, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Live jobs (scheduler_live.cc).
  void BuildLiveGroupsLocked(JobEntry& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  LiveGroup* WatchGroupLocked(JobEntry& job, int64_t shard_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether a pending shard of a live job may be leased now (its node's watch is subscribed).
  bool MayGrantLocked(JobEntry& job, const ShardEntry& shard) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnShardGrantedLocked(JobEntry& job, const ShardEntry& shard)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnWatchReportLocked(JobEntry& job, const ShardEntry& watch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnWatchLostLocked(JobEntry& job, const ShardEntry& watch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Rescans, apply, LIVE, the cutover's progress.
  void EvaluateLiveLocked(JobEntry& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartRescanLocked(JobEntry& job, LiveGroup& group) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SendLiveControlLocked(JobEntry& job, const LiveGroup& group)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CheckCutoverLocked(JobEntry& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EndCutoverLocked(JobEntry& job, std::string error) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FillLiveLocked(const JobEntry& job, ferry::v1::Job& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::string> SubmitJobLocked(const ferry::v1::JobSpec& spec)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Leases (scheduler.cc).
  // Grants pending shards to free slots, in one batch.
  void DispatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void GrantRoundsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  ShardEntry* PickShardLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool GrantLocked(AgentEntry& agent, ShardEntry& shard) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes the lease from its agent and the running counts; the caller sets the new state.
  void ReleaseLocked(ShardEntry& shard) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Leased -> pending at the last stored checkpoint (persisted).
  void RequeueLocked(ShardEntry& shard) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateRateSharesLocked(JobEntry& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<ShardEntry*> FindLeaseLocked(const std::string& agent_id,
                                              const std::string& lease_id, uint64_t epoch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stores a reported checkpoint (and failed keys), then updates the totals.
  absl::Status ApplyCheckpointLocked(
      ShardEntry& shard, const ShardRecord& updated,
      const google::protobuf::RepeatedPtrField<ferry::v1::FailedKey>& failed_keys)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ReportLocked(AgentEntry& agent, const ferry::v1::AgentMessage::Progress& progress)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status FinishLocked(AgentEntry& agent,
                            const ferry::v1::AgentMessage::ShardFinished& finished)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ReturnLocked(AgentEntry& agent, const ferry::v1::AgentMessage::Returned& returned)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sends at once, or once the open batch is committed.
  void SendLocked(const std::string& agent_id, const ferry::v1::ControllerMessage& message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status HandleAgentMessageLocked(AgentEntry& agent, const ferry::v1::AgentMessage& message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Its leases go back to the queue and the agent is forgotten: its next message is NOT_FOUND.
  void DisconnectLocked(const std::string& agent_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Batches (scheduler_batch.cc): from Begin to End every store write goes into one commit and
  // SendLocked holds messages back until it succeeded; nested batches join the outer one. A
  // failed commit drops the held messages and disconnects the agents they were for.
  void BeginBatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EndBatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int ParallelLimit(const JobEntry& job) const;

  JobStore* const store_;
  const SchedulerOptions options_;
  const std::unique_ptr<metrics::Registry> own_metrics_;  // When options_.metrics is null.
  const SchedulerMetrics metrics_;

  absl::Mutex mu_;
  std::map<std::string, JobEntry> jobs_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> job_order_ ABSL_GUARDED_BY(mu_);  // Submission order.
  size_t next_job_ ABSL_GUARDED_BY(mu_) = 0;                 // Round-robin position.
  // Looked up several times for each agent message: hashed, not ordered (a fleet job holds
  // 100,000 shards). Node-based, so entries stay where they are while the map grows.
  absl::node_hash_map<int64_t, ShardEntry> shards_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int64_t> leases_ ABSL_GUARDED_BY(mu_);  // lease_id -> shard.
  std::map<std::string, AgentEntry> agents_ ABSL_GUARDED_BY(mu_);
  uint64_t next_agent_ ABSL_GUARDED_BY(mu_) = 0;
  int batch_depth_ ABSL_GUARDED_BY(mu_) = 0;
  bool batch_open_ ABSL_GUARDED_BY(mu_) = false;  // The store's batch began.
  std::vector<std::pair<std::string, ferry::v1::ControllerMessage>> outbox_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry::server
