#pragma once

// The controller's state in one SQLite file (WAL, mode 0600): jobs with their specs (passwords
// included), shards with checkpoints and leases, failed keys. Every method commits before it
// returns, so whatever a caller acknowledges after a call survives a crash; inside a batch
// (BeginBatch), CommitBatch is that commit.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ferry/v1/ferry.pb.h"

struct sqlite3;

namespace ferry::server {

class Statement;

struct JobRecord {
  std::string id;
  int64_t seq = 0;          // Submission order; set by CreateJob.
  ferry::v1::JobSpec spec;  // With passwords.
  ferry::v1::JobState state = ferry::v1::JOB_STATE_PENDING;
  std::string error;
  int error_code = 0;  // absl::StatusCode of `error`.
  std::vector<std::string> warnings;
  bool planned = false;  // The shards are stored.
  uint64_t estimated_keys = 0;
  absl::Time create_time;
  absl::Time update_time;
  // Live jobs: what outlives a controller restart of Job.live (cutover_error, verify_job_id).
  ferry::v1::LiveProgress live;
};

struct ShardRecord {
  int64_t id = 0;  // Set by SavePlan.
  std::string job_id;
  ferry::v1::ShardRef shard;  // As the planner made it; never changes.
  ferry::v1::ShardState state = ferry::v1::SHARD_STATE_PENDING;
  ferry::v1::Checkpoint checkpoint;
  std::string lease_id;  // Empty unless leased.
  uint64_t epoch = 0;    // Of the last grant.
  std::string agent_id;  // Empty unless leased.
  std::string error;     // Why the shard failed.
};

// Closes a SQLite connection (for std::unique_ptr).
struct SqliteCloser {
  void operator()(sqlite3* db) const;
};
using SqliteHandle = std::unique_ptr<sqlite3, SqliteCloser>;

// Owns a file descriptor and closes it on destruction; -1 holds nothing.
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  ~UniqueFd();
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

struct StoredFailedKey {
  int64_t id = 0;  // Increases in report order.
  std::string key;
  std::string reason;
};

// Thread-safe: one connection behind a mutex.
class JobStore {
 public:
  // Opens or creates the file (mode 0600, also enforced on an existing file) and its tables.
  static absl::StatusOr<std::unique_ptr<JobStore>> Open(const std::string& path);
  ~JobStore();
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  // Inserts a new job; sets `job->seq`.
  absl::Status CreateJob(JobRecord* job) ABSL_LOCKS_EXCLUDED(mu_);
  // Updates state, error, warnings, planned, estimated_keys and update_time. With
  // `forget_passwords`, also stores the spec without its passwords, in the same transaction, and
  // then checkpoints and truncates the WAL, so that no copy of them stays in the file or its WAL
  // (secure_delete zeroes the bytes freed). `job.spec` itself is left as it is.
  absl::Status UpdateJob(const JobRecord& job, bool forget_passwords = false)
      ABSL_LOCKS_EXCLUDED(mu_);
  // In one transaction: inserts `shards` (setting their ids) and updates `job` (typically now
  // planned).
  absl::Status SavePlan(const JobRecord& job, std::vector<ShardRecord>* shards)
      ABSL_LOCKS_EXCLUDED(mu_);
  // In one transaction: updates each shard's state, checkpoint, lease and error, and appends
  // `failed_keys` to the first shard's job.
  absl::Status UpdateShards(const std::vector<const ShardRecord*>& shards,
                            const std::vector<ferry::v1::FailedKey>& failed_keys = {})
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status UpdateShard(const ShardRecord& shard,
                           const std::vector<ferry::v1::FailedKey>& failed_keys = {})
      ABSL_LOCKS_EXCLUDED(mu_);

  // A batch: from BeginBatch to CommitBatch every write goes into one transaction (each method's
  // own transaction becomes a savepoint in it), so that many writes cost one commit. Until
  // CommitBatch returns OK nothing written since BeginBatch is durable: the caller must not
  // acknowledge any of it before. On a failed commit every write of the batch is undone. Not
  // nested; the caller keeps other threads' writes out of the batch (the Scheduler holds its
  // lock from BeginBatch to CommitBatch).
  absl::Status BeginBatch() ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status CommitBatch() ABSL_LOCKS_EXCLUDED(mu_);

  // Every job, in submission order.
  absl::StatusOr<std::vector<JobRecord>> LoadJobs() ABSL_LOCKS_EXCLUDED(mu_);
  // Every shard of every job, in id order.
  absl::StatusOr<std::vector<ShardRecord>> LoadShards() ABSL_LOCKS_EXCLUDED(mu_);
  // Up to `limit` failed keys of `job_id` with ids above `after_id`.
  absl::StatusOr<std::vector<StoredFailedKey>> ListFailedKeys(const std::string& job_id,
                                                              int64_t after_id, int limit)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<uint64_t> CountFailedKeys(const std::string& job_id) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  JobStore(SqliteHandle db, UniqueFd lock_fd);

  absl::Status Exec(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // State files written before cluster support lack the shards' scheme and slots.
  absl::Status AddColumnsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status UpdateJobLocked(const JobRecord& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status StoreSpecWithoutPasswordsLocked(const JobRecord& job)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status UpdateShardLocked(const ShardRecord& shard) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status InsertFailedKeysLocked(const std::string& job_id,
                                      const std::vector<ferry::v1::FailedKey>& keys)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Copies the WAL into the file and cuts it to zero bytes (UpdateJob with forget_passwords).
  void TruncateWalLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  bool in_batch_ ABSL_GUARDED_BY(mu_) = false;
  bool truncate_after_batch_ ABSL_GUARDED_BY(mu_) = false;  // Asked for during the batch.
  // Declared before the lock, so that the connection closes before the lock is released.
  const UniqueFd lock_fd_;  // Holds the exclusive lock on the state file (LockStateFile).
  const SqliteHandle db_handle_;
  sqlite3* const db_ ABSL_PT_GUARDED_BY(mu_);  // db_handle_.get(), the connection behind mu_.
  // UpdateShardLocked's statement, prepared once; finalized before the connection closes.
  std::unique_ptr<Statement> update_shard_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry::server
