#include "server/job_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "proto/wire/shard.h"
#include "server/sqlite_statement.h"

namespace ferry::server {
namespace {

constexpr int kBusyTimeoutMs = 5000;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY,
  seq INTEGER NOT NULL,
  spec BLOB NOT NULL,
  state INTEGER NOT NULL,
  error TEXT NOT NULL DEFAULT '',
  error_code INTEGER NOT NULL DEFAULT 0,
  warnings TEXT NOT NULL DEFAULT '',
  planned INTEGER NOT NULL DEFAULT 0,
  estimated_keys INTEGER NOT NULL DEFAULT 0,
  create_ms INTEGER NOT NULL,
  update_ms INTEGER NOT NULL,
  live BLOB NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS shards (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL REFERENCES jobs(id),
  source_node TEXT NOT NULL,
  source_db INTEGER NOT NULL,
  shard_bits INTEGER NOT NULL,
  shard_index INTEGER NOT NULL,
  target_db INTEGER NOT NULL,
  state INTEGER NOT NULL,
  checkpoint BLOB NOT NULL,
  lease_id TEXT NOT NULL DEFAULT '',
  epoch INTEGER NOT NULL DEFAULT 0,
  agent_id TEXT NOT NULL DEFAULT '',
  error TEXT NOT NULL DEFAULT '',
  scan_scheme INTEGER NOT NULL DEFAULT 0,
  slots TEXT NOT NULL DEFAULT '',
  reverse INTEGER NOT NULL DEFAULT 0,
  watch INTEGER NOT NULL DEFAULT 0,
  UNIQUE (job_id, source_node, source_db, shard_bits, shard_index)
);
CREATE TABLE IF NOT EXISTS failed_keys (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL REFERENCES jobs(id),
  key BLOB NOT NULL,
  reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS failed_keys_by_job ON failed_keys (job_id, id);
-- One row per key of a job: a key that SCAN returned twice, or a shard that ran again, fails
-- once (the job's failed count is the number of rows). Files from before may hold duplicates.
DELETE FROM failed_keys WHERE id NOT IN (SELECT MIN(id) FROM failed_keys GROUP BY job_id, key);
CREATE UNIQUE INDEX IF NOT EXISTS failed_keys_distinct ON failed_keys (job_id, key);
)sql";

int64_t ToMillis(absl::Time t) { return absl::ToUnixMillis(t); }
absl::Time FromMillis(int64_t ms) { return absl::FromUnixMillis(ms); }

// Creates the file with mode 0600 before SQLite opens it (SQLite gives its -wal and -shm files
// the same mode), and narrows the mode of an existing file.
absl::Status CreatePrivateFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open state file ", path, ": ", std::strerror(errno)));
  }
  int rc = fchmod(fd, 0600);
  int saved_errno = errno;
  close(fd);
  if (rc != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot chmod state file ", path, ": ", std::strerror(saved_errno)));
  }
  return absl::OkStatus();
}

// The shard columns, in the order ReadShard reads them (from column 2) and BindShardRef binds
// them. Each field of ferry.v1.ShardRef has a column of its own, so that the UNIQUE key of the
// table covers them and state files of every earlier version read the same.
constexpr const char* kShardRefColumns =
    "source_node, source_db, shard_bits, shard_index, target_db, scan_scheme, slots, reverse, "
    "watch";
constexpr int kShardRefColumnCount = 9;

// Binds `shard` to parameters first .. first + kShardRefColumnCount - 1.
void BindShardRef(Statement& statement, int first, const ferry::v1::ShardRef& shard) {
  statement.BindText(first, shard.source_node())
      .Bind(first + 1, shard.source_db())
      .Bind(first + 2, shard.shard_bits())
      .Bind(first + 3, static_cast<int64_t>(shard.shard_index()))
      .Bind(first + 4, shard.target_db())
      .Bind(first + 5, shard.scan_scheme())
      .BindText(first + 6, redis::FormatSlotRanges(wire::SlotRangesFromProto(shard.slots())))
      .Bind(first + 7, shard.reverse() ? 1 : 0)
      .Bind(first + 8, shard.watch() ? 1 : 0);
}

ferry::v1::ShardRef ReadShardRef(Statement& row, int first) {
  ferry::v1::ShardRef shard;
  shard.set_source_node(row.Bytes(first));
  shard.set_source_db(static_cast<int>(row.Int(first + 1)));
  shard.set_shard_bits(static_cast<int>(row.Int(first + 2)));
  shard.set_shard_index(static_cast<uint64_t>(row.Int(first + 3)));
  shard.set_target_db(static_cast<int>(row.Int(first + 4)));
  shard.set_scan_scheme(static_cast<ferry::v1::ScanScheme>(row.Int(first + 5)));
  // Written by FormatSlotRanges; a damaged value reads as "no slots".
  wire::AddSlotRanges(redis::ParseSlotRanges(row.Bytes(first + 6)).value_or(redis::SlotRanges()),
                      shard.mutable_slots());
  shard.set_reverse(row.Int(first + 7) != 0);
  shard.set_watch(row.Int(first + 8) != 0);
  return shard;
}

// A row of `SELECT id, job_id, <kShardRefColumns>, state, checkpoint, lease_id, epoch, agent_id,
// error`.
ShardRecord ReadShard(Statement& row) {
  ShardRecord shard;
  shard.id = row.Int(0);
  shard.job_id = row.Bytes(1);
  shard.shard = ReadShardRef(row, 2);
  constexpr int c = 2 + kShardRefColumnCount;
  shard.state = static_cast<ferry::v1::ShardState>(row.Int(c));
  shard.checkpoint.ParseFromString(row.Bytes(c + 1));
  shard.lease_id = row.Bytes(c + 2);
  shard.epoch = static_cast<uint64_t>(row.Int(c + 3));
  shard.agent_id = row.Bytes(c + 4);
  shard.error = row.Bytes(c + 5);
  return shard;
}

}  // namespace

// Holds an exclusive lock on `<path>.lock` so that two processes (two controllers, or a
// controller and `ferry migrate --state`) never run the same jobs. The kernel drops it when the
// process dies, so a restart after SIGKILL finds it free.
absl::StatusOr<UniqueFd> LockStateFile(const std::string& path) {
  const std::string lock_path = path + ".lock";
  UniqueFd fd(open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (fd.get() < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open ", lock_path, ": ", std::strerror(errno)));
  }
  if (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "state file ", path, " is in use by another ferry process (", lock_path, " is locked)"));
  }
  return absl::StatusOr<UniqueFd>(std::move(fd));
}

void SqliteCloser::operator()(sqlite3* db) const { sqlite3_close(db); }

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) close(fd_);  // For the lock file: releases the lock.
}

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

absl::StatusOr<std::unique_ptr<JobStore>> JobStore::Open(const std::string& path) {
  FERRY_ASSIGN_OR_RETURN(UniqueFd lock_fd, LockStateFile(path));
  FERRY_RETURN_IF_ERROR(CreatePrivateFile(path));
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  SqliteHandle db(raw);  // Closed on every path, even when opening failed (SQLite's rule).
  if (rc != SQLITE_OK) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open state file ", path, ": ", sqlite3_errstr(rc)));
  }
  sqlite3_busy_timeout(raw, kBusyTimeoutMs);
  std::unique_ptr<JobStore> store(new JobStore(std::move(db), std::move(lock_fd)));
  absl::MutexLock lock(&store->mu_);
  // FULL: a commit is on disk before the controller acknowledges the checkpoint it holds.
  // secure_delete: the file holds passwords until their job ends; the bytes SQLite frees when
  // they are removed (UpdateJob with forget_passwords) are zeroed rather than left in free space.
  FERRY_RETURN_IF_ERROR(
      store->Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA secure_delete=ON;"));
  FERRY_RETURN_IF_ERROR(store->Exec(kSchema));
  FERRY_RETURN_IF_ERROR(store->AddColumnsLocked());
  return store;
}

JobStore::JobStore(SqliteHandle db, UniqueFd lock_fd)
    : lock_fd_(std::move(lock_fd)), db_handle_(std::move(db)), db_(db_handle_.get()) {}

// The connection closes before the lock is released (member order).
JobStore::~JobStore() = default;

absl::Status JobStore::AddColumnsLocked() {
  // Columns added since the first version, oldest first; each is added once, where missing.
  const std::tuple<const char*, const char*, const char*> kAdded[] = {
      {"shards", "slots",
       "ALTER TABLE shards ADD COLUMN scan_scheme INTEGER NOT NULL DEFAULT 0; "
       "ALTER TABLE shards ADD COLUMN slots TEXT NOT NULL DEFAULT '';"},
      {"shards", "reverse", "ALTER TABLE shards ADD COLUMN reverse INTEGER NOT NULL DEFAULT 0;"},
      {"shards", "watch", "ALTER TABLE shards ADD COLUMN watch INTEGER NOT NULL DEFAULT 0;"},
      {"jobs", "live", "ALTER TABLE jobs ADD COLUMN live BLOB NOT NULL DEFAULT '';"},
  };
  for (const auto& [table, column, sql] : kAdded) {
    Statement columns(db_, "SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ?");
    columns.BindText(1, table);
    columns.BindText(2, column);
    FERRY_ASSIGN_OR_RETURN(bool has_row, columns.Step());
    if (has_row && columns.Int(0) > 0) continue;
    FERRY_RETURN_IF_ERROR(Exec(sql));
  }
  return absl::OkStatus();
}

absl::Status JobStore::Exec(const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = error != nullptr ? error : "unknown error";
    sqlite3_free(error);
    return absl::InternalError(absl::StrCat("job store: ", message));
  }
  return absl::OkStatus();
}

absl::Status JobStore::CreateJob(JobRecord* job) {
  absl::MutexLock lock(&mu_);
  Statement max_seq(db_, "SELECT COALESCE(MAX(seq), 0) FROM jobs");
  FERRY_ASSIGN_OR_RETURN(bool has_row, max_seq.Step());
  job->seq = has_row ? max_seq.Int(0) + 1 : 1;
  Statement insert(db_,
                   "INSERT INTO jobs (id, seq, spec, state, error, warnings, planned, "
                   "estimated_keys, create_ms, update_ms, error_code, live) "
                   "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)");
  insert.BindText(1, job->id)
      .Bind(2, job->seq)
      .BindBlob(3, job->spec.SerializeAsString())
      .Bind(4, job->state)
      .BindText(5, job->error)
      .BindText(6, absl::StrJoin(job->warnings, "\n"))
      .Bind(7, job->planned ? 1 : 0)
      .Bind(8, static_cast<int64_t>(job->estimated_keys))
      .Bind(9, ToMillis(job->create_time))
      .Bind(10, ToMillis(job->update_time))
      .Bind(11, job->error_code)
      .BindBlob(12, job->live.SerializeAsString());
  return insert.Run();
}

absl::Status JobStore::UpdateJobLocked(const JobRecord& job) {
  Statement update(db_,
                   "UPDATE jobs SET state=?, error=?, warnings=?, planned=?, estimated_keys=?, "
                   "update_ms=?, error_code=?, live=? WHERE id=?");
  update.Bind(1, job.state)
      .BindText(2, job.error)
      .BindText(3, absl::StrJoin(job.warnings, "\n"))
      .Bind(4, job.planned ? 1 : 0)
      .Bind(5, static_cast<int64_t>(job.estimated_keys))
      .Bind(6, ToMillis(job.update_time))
      .Bind(7, job.error_code)
      .BindBlob(8, job.live.SerializeAsString())
      .BindText(9, job.id);
  FERRY_RETURN_IF_ERROR(update.Run());
  if (sqlite3_changes(db_) != 1) return absl::NotFoundError(absl::StrCat("job ", job.id));
  return absl::OkStatus();
}

absl::Status JobStore::StoreSpecWithoutPasswordsLocked(const JobRecord& job) {
  ferry::v1::JobSpec spec = job.spec;
  spec.mutable_source()->clear_password();
  spec.mutable_target()->clear_password();
  Statement update(db_, "UPDATE jobs SET spec=? WHERE id=?");
  update.BindBlob(1, spec.SerializeAsString()).BindText(2, job.id);
  return update.Run();
}

absl::Status JobStore::UpdateShardLocked(const ShardRecord& shard) {
  // Prepared once: the statement of every checkpoint and grant.
  if (update_shard_ == nullptr || !update_shard_->ok()) {
    update_shard_ = std::make_unique<Statement>(
        db_,
        "UPDATE shards SET state=?, checkpoint=?, lease_id=?, epoch=?, agent_id=?, error=? WHERE "
        "id=?");
  }
  Statement& update = *update_shard_;
  update.Bind(1, shard.state)
      .BindBlob(2, shard.checkpoint.SerializeAsString())
      .BindText(3, shard.lease_id)
      .Bind(4, static_cast<int64_t>(shard.epoch))
      .BindText(5, shard.agent_id)
      .BindText(6, shard.error)
      .Bind(7, shard.id);
  const absl::Status run = update.Run();
  update.Reset();  // Nothing of it stays active until the commit.
  FERRY_RETURN_IF_ERROR(run);
  if (sqlite3_changes(db_) != 1) return absl::NotFoundError(absl::StrCat("shard ", shard.id));
  return absl::OkStatus();
}

absl::Status JobStore::InsertFailedKeysLocked(const std::string& job_id,
                                              const std::vector<ferry::v1::FailedKey>& keys) {
  for (const ferry::v1::FailedKey& key : keys) {
    Statement insert(db_, "INSERT OR IGNORE INTO failed_keys (job_id, key, reason) VALUES (?,?,?)");
    insert.BindText(1, job_id).BindBlob(2, key.key()).BindText(3, key.reason());
    FERRY_RETURN_IF_ERROR(insert.Run());
  }
  return absl::OkStatus();
}

absl::Status JobStore::UpdateJob(const JobRecord& job, bool forget_passwords) {
  absl::MutexLock lock(&mu_);
  if (!forget_passwords) return UpdateJobLocked(job);
  FERRY_RETURN_IF_ERROR(
      InTransaction(db_, in_batch_, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
        FERRY_RETURN_IF_ERROR(UpdateJobLocked(job));
        return StoreSpecWithoutPasswordsLocked(job);
      }));
  if (in_batch_) {
    truncate_after_batch_ = true;  // Once the batch is committed.
    return absl::OkStatus();
  }
  TruncateWalLocked();
  return absl::OkStatus();
}

void JobStore::TruncateWalLocked() {
  // The WAL still holds the pages written before, passwords included: copy the new pages into
  // the file and cut the WAL to zero bytes. Nobody else reads this file (LockStateFile), so the
  // checkpoint is not held back by readers. The job's new state is committed either way, so a
  // failed checkpoint is not the caller's error (the next one, or closing the file, retries it).
  if (absl::Status status = Exec("PRAGMA wal_checkpoint(TRUNCATE);"); !status.ok()) {
    FERRY_LOG(Warning) << "the state file's WAL was not truncated: " << status;
  }
}

absl::Status JobStore::BeginBatch() {
  absl::MutexLock lock(&mu_);
  if (in_batch_) return absl::FailedPreconditionError("job store: a batch is open already");
  if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return SqliteError(db_, "begin batch");
  }
  in_batch_ = true;
  return absl::OkStatus();
}

absl::Status JobStore::CommitBatch() {
  absl::MutexLock lock(&mu_);
  if (!in_batch_) return absl::FailedPreconditionError("job store: no batch is open");
  in_batch_ = false;
  if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
    absl::Status status = SqliteError(db_, "commit batch");
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    return status;
  }
  if (std::exchange(truncate_after_batch_, false)) TruncateWalLocked();
  return absl::OkStatus();
}

absl::Status JobStore::SavePlan(const JobRecord& job, std::vector<ShardRecord>* shards) {
  absl::MutexLock lock(&mu_);
  return InTransaction(db_, in_batch_, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
    for (ShardRecord& shard : *shards) {
      const std::string sql = absl::StrCat(
          "INSERT INTO shards (job_id, ", kShardRefColumns,
          ", state, checkpoint, lease_id, epoch, agent_id, error) "
          "VALUES (",
          absl::StrJoin(std::vector<std::string>(1 + kShardRefColumnCount + 6, "?"), ","), ")");
      Statement insert(db_, sql.c_str());
      insert.BindText(1, job.id);
      BindShardRef(insert, 2, shard.shard);
      constexpr int c = 2 + kShardRefColumnCount;
      insert.Bind(c, shard.state)
          .BindBlob(c + 1, shard.checkpoint.SerializeAsString())
          .BindText(c + 2, shard.lease_id)
          .Bind(c + 3, static_cast<int64_t>(shard.epoch))
          .BindText(c + 4, shard.agent_id)
          .BindText(c + 5, shard.error);
      FERRY_RETURN_IF_ERROR(insert.Run());
      shard.id = sqlite3_last_insert_rowid(db_);
      shard.job_id = job.id;
    }
    return UpdateJobLocked(job);
  });
}

absl::Status JobStore::UpdateShards(const std::vector<const ShardRecord*>& shards,
                                    const std::vector<ferry::v1::FailedKey>& failed_keys) {
  if (shards.empty()) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  // In a batch, one statement needs no savepoint: SQLite undoes a failed statement by itself.
  if (in_batch_ && shards.size() == 1 && failed_keys.empty()) {
    return UpdateShardLocked(*shards.front());
  }
  return InTransaction(db_, in_batch_, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
    for (const ShardRecord* shard : shards) FERRY_RETURN_IF_ERROR(UpdateShardLocked(*shard));
    return InsertFailedKeysLocked(shards.front()->job_id, failed_keys);
  });
}

absl::Status JobStore::UpdateShard(const ShardRecord& shard,
                                   const std::vector<ferry::v1::FailedKey>& failed_keys) {
  return UpdateShards({&shard}, failed_keys);
}

absl::StatusOr<std::vector<JobRecord>> JobStore::LoadJobs() {
  absl::MutexLock lock(&mu_);
  Statement select(db_,
                   "SELECT id, seq, spec, state, error, warnings, planned, estimated_keys, "
                   "create_ms, update_ms, error_code, live FROM jobs ORDER BY seq");
  std::vector<JobRecord> jobs;
  while (true) {
    FERRY_ASSIGN_OR_RETURN(bool has_row, select.Step());
    if (!has_row) break;
    JobRecord& job = jobs.emplace_back();
    job.id = select.Bytes(0);
    job.seq = select.Int(1);
    if (!job.spec.ParseFromString(select.Bytes(2))) {
      return absl::DataLossError(absl::StrCat("job store: unreadable spec of job ", job.id));
    }
    job.state = static_cast<ferry::v1::JobState>(select.Int(3));
    job.error = select.Bytes(4);
    std::string warnings = select.Bytes(5);
    if (!warnings.empty()) job.warnings = absl::StrSplit(warnings, '\n');
    job.planned = select.Int(6) != 0;
    job.estimated_keys = static_cast<uint64_t>(select.Int(7));
    job.create_time = FromMillis(select.Int(8));
    job.update_time = FromMillis(select.Int(9));
    job.error_code = static_cast<int>(select.Int(10));
    // Written by SerializeAsString; a damaged value reads as nothing.
    (void)job.live.ParseFromString(select.Bytes(11));
  }
  return jobs;
}

absl::StatusOr<std::vector<ShardRecord>> JobStore::LoadShards() {
  absl::MutexLock lock(&mu_);
  const std::string sql =
      absl::StrCat("SELECT id, job_id, ", kShardRefColumns,
                   ", state, checkpoint, lease_id, epoch, agent_id, error FROM shards ORDER BY id");
  Statement select(db_, sql.c_str());
  std::vector<ShardRecord> shards;
  while (true) {
    FERRY_ASSIGN_OR_RETURN(bool has_row, select.Step());
    if (!has_row) break;
    shards.push_back(ReadShard(select));
  }
  return shards;
}

absl::StatusOr<std::vector<StoredFailedKey>> JobStore::ListFailedKeys(const std::string& job_id,
                                                                      int64_t after_id, int limit) {
  absl::MutexLock lock(&mu_);
  Statement select(db_,
                   "SELECT id, key, reason FROM failed_keys WHERE job_id=? AND id>? ORDER BY id "
                   "LIMIT ?");
  select.BindText(1, job_id).Bind(2, after_id).Bind(3, limit);
  std::vector<StoredFailedKey> keys;
  while (true) {
    FERRY_ASSIGN_OR_RETURN(bool has_row, select.Step());
    if (!has_row) break;
    keys.push_back({select.Int(0), select.Bytes(1), select.Bytes(2)});
  }
  return keys;
}

absl::StatusOr<uint64_t> JobStore::CountFailedKeys(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  Statement select(db_, "SELECT COUNT(*) FROM failed_keys WHERE job_id=?");
  select.BindText(1, job_id);
  FERRY_ASSIGN_OR_RETURN(bool has_row, select.Step());
  return has_row ? static_cast<uint64_t>(select.Int(0)) : 0;
}

}  // namespace ferry::server
