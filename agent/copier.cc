#include "agent/copier.h"

#include <deque>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "agent/expiry.h"
#include "agent/rate_limiter.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/redis/errors.h"
#include "common/redis/scan_math.h"

namespace ferry::agent {

using redis::Connection;
using redis::ErrorClass;
using redis::Reply;
using redis::ReplyView;

ShardCounters& ShardCounters::operator+=(const ShardCounters& o) {
  scanned += o.scanned;
  copied += o.copied;
  skipped += o.skipped;
  vanished += o.vanished;
  expired += o.expired;
  failed += o.failed;
  bytes += o.bytes;
  return *this;
}

namespace {

// The keys of one SCAN reply with their PTTL and DUMP replies, read at `read_time`.
struct Batch {
  Reply scan;  // Owns the key names: element(1) of the SCAN reply.
  std::vector<int64_t> pttl;
  std::vector<Reply> dump;
  absl::Time read_time;
  uint64_t cursor_after = 0;  // Where the shard resumes once this batch is written.
  bool finished = false;      // The last batch of the shard.
  uint64_t bytes = 0;

  ReplyView keys() const { return scan.element(1); }
};

// A queue of batches bounded in bytes, between the reading thread and the writing one. Always
// admits one batch, so a single huge key still moves.
class BatchQueue {
 public:
  explicit BatchQueue(uint64_t max_bytes) : max_bytes_(max_bytes) {}

  // False when the consumer stopped.
  bool Push(Batch batch) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    auto room = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopped_ || queue_.empty() || bytes_ + batch.bytes <= max_bytes_;
    };
    mu_.Await(absl::Condition(&room));
    if (stopped_) return false;
    bytes_ += batch.bytes;
    queue_.push_back(std::move(batch));
    return true;
  }

  // The next batch, or nullopt once the producer closed the queue (status() says why).
  std::optional<Batch> Pop() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !queue_.empty() || closed_ || stopped_;
    };
    mu_.Await(absl::Condition(&ready));
    if (queue_.empty() || stopped_) return std::nullopt;
    Batch batch = std::move(queue_.front());
    queue_.pop_front();
    bytes_ -= batch.bytes;
    return batch;
  }

  void Close(absl::Status status) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    status_ = std::move(status);
  }
  void Stop() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
  }
  bool stopped() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return stopped_;
  }
  absl::Status status() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return status_;
  }

 private:
  const uint64_t max_bytes_;
  absl::Mutex mu_;
  std::deque<Batch> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

bool Cancelled(const std::atomic<bool>* cancel) { return cancel != nullptr && cancel->load(); }

// Turns an error reply of the source or the target into a status that says which side and
// which command failed.
absl::Status ReplyStatus(absl::string_view side, absl::string_view command, ReplyView reply) {
  return Annotate(redis::StatusFromReplyError(reply.str()), absl::StrCat(side, " ", command));
}

// Reads the shard from `cursor` and pushes batches until it is finished, stopped or fails.
class ShardReader {
 public:
  ShardReader(const ShardSpec& spec, const CopyOptions& options, Connection& source,
              RateLimiter* limiter, const std::atomic<bool>* cancel, BatchQueue& queue)
      : spec_(spec),
        options_(options),
        source_(source),
        limiter_(limiter),
        cancel_(cancel),
        queue_(queue),
        count_(std::to_string(options.batch_keys)) {}

  void Run(uint64_t cursor) { queue_.Close(ReadAll(cursor)); }

 private:
  void AppendScan(uint64_t cursor) {
    const std::string cursor_arg = std::to_string(cursor);
    std::vector<absl::string_view> argv = {"SCAN", cursor_arg, "COUNT", count_};
    if (!spec_.match.empty()) argv.insert(argv.end(), {"MATCH", spec_.match});
    if (!spec_.type.empty()) argv.insert(argv.end(), {"TYPE", spec_.type});
    source_.Append(argv);
  }

  bool Finished(uint64_t cursor) const {
    return redis::ShardFinished(cursor, spec_.shard_index, spec_.shard_bits);
  }

  absl::Status ReadAll(uint64_t cursor) {
    // The SCAN for batch n+1 travels in the same flush as the PTTL/DUMP round of batch n.
    AppendScan(cursor);
    FERRY_RETURN_IF_ERROR(source_.Flush());
    for (;;) {
      if (Cancelled(cancel_) || queue_.stopped()) return absl::OkStatus();
      Batch batch;
      FERRY_ASSIGN_OR_RETURN(batch.scan, source_.ReadReply());
      if (batch.scan.is_error()) return ReplyStatus("source", "SCAN", batch.scan);
      if (!batch.scan.is_array() || batch.scan.size() != 2) {
        return absl::InternalError("source SCAN: unexpected reply shape");
      }
      uint64_t next = 0;
      if (!absl::SimpleAtoi(batch.scan.element(0).str(), &next)) {
        return absl::InternalError("source SCAN: bad cursor");
      }
      batch.cursor_after = next;
      batch.finished = Finished(next);
      const ReplyView keys = batch.keys();
      if (limiter_ != nullptr && keys.size() > 0 &&
          !limiter_->Acquire(static_cast<double>(keys.size()), cancel_)) {
        return absl::OkStatus();
      }
      for (size_t i = 0; i < keys.size(); ++i) {
        source_.Append({"PTTL", keys.element(i).str()});
        source_.Append({"DUMP", keys.element(i).str()});
      }
      if (!batch.finished) AppendScan(next);
      batch.read_time = absl::Now();
      FERRY_RETURN_IF_ERROR(source_.Flush());
      FERRY_RETURN_IF_ERROR(ReadDumps(batch));
      const bool finished = batch.finished;
      if (!queue_.Push(std::move(batch)) || finished) return absl::OkStatus();
    }
  }

  absl::Status ReadDumps(Batch& batch) {
    const size_t n = batch.keys().size();
    batch.pttl.reserve(n);
    batch.dump.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      FERRY_ASSIGN_OR_RETURN(Reply pttl, source_.ReadReply());
      FERRY_ASSIGN_OR_RETURN(Reply dump, source_.ReadReply());
      for (const Reply* r : {&pttl, &dump}) {
        if (!r->is_error()) continue;
        absl::Status status = ReplyStatus("source", r == &pttl ? "PTTL" : "DUMP", *r);
        // A per-key read error is a vanished-like key for the writer: nil DUMP, with the
        // error kept as its reply so the writer records it.
        if (redis::Classify(status) != ErrorClass::kPerKey) return status;
      }
      batch.pttl.push_back(pttl.is_error() ? -2 : pttl.integer());
      batch.bytes += dump.str().size() + batch.keys().element(i).str().size();
      batch.dump.push_back(std::move(dump));
    }
    return absl::OkStatus();
  }

  const ShardSpec& spec_;
  const CopyOptions& options_;
  Connection& source_;
  RateLimiter* limiter_;
  const std::atomic<bool>* cancel_;
  BatchQueue& queue_;
  const std::string count_;
};

// What the writer sent for one key, to interpret its reply.
enum class Sent { kNothing, kRestore, kDelete };

// Writes batches to the target and checkpoints after each.
class ShardWriter {
 public:
  ShardWriter(const CopyOptions& options, Connection* target, ExpiryMapper expiry,
              Checkpoint& checkpoint, const CopyCallbacks& callbacks)
      : options_(options),
        target_(target),
        expiry_(expiry),
        checkpoint_(checkpoint),
        callbacks_(callbacks) {}

  absl::Status Write(const Batch& batch) {
    ShardCounters delta;
    const ReplyView keys = batch.keys();
    delta.scanned = keys.size();
    sent_.assign(keys.size(), Sent::kNothing);
    for (size_t i = 0; i < keys.size(); ++i) {
      const ReplyView dump = batch.dump[i];
      if (dump.is_error()) {
        Fail(keys.element(i).str(), absl::StrCat("cannot read from the source: ", dump.str()),
             delta);
        continue;
      }
      if (batch.pttl[i] == -2 || dump.is_nil()) {
        ++delta.vanished;
        continue;
      }
      int64_t ttl = 0;  // RESTORE's "no expiry".
      bool absolute = false;
      if (batch.pttl[i] >= 0) {
        // Never extend a TTL (expiry.h).
        const std::optional<int64_t> restore_ttl =
            expiry_.RestoreTtl(batch.pttl[i], batch.read_time);
        ttl = restore_ttl.value_or(0);
        absolute = expiry_.absolute();
        if (!restore_ttl.has_value()) {
          ++delta.expired;
          if (options_.on_conflict == OnConflict::kReplace && target_ != nullptr) {
            target_->Append({"DEL", keys.element(i).str()});
            sent_[i] = Sent::kDelete;
          }
          continue;
        }
      }
      delta.bytes += dump.str().size();
      if (target_ == nullptr) continue;  // Dry run.
      const std::string ttl_arg = std::to_string(ttl);
      absl::string_view argv[6] = {"RESTORE", keys.element(i).str(), ttl_arg, dump.str()};
      size_t argc = 4;
      if (options_.on_conflict == OnConflict::kReplace) argv[argc++] = "REPLACE";
      if (absolute) argv[argc++] = "ABSTTL";
      target_->Append(absl::MakeConstSpan(argv, argc));
      sent_[i] = Sent::kRestore;
    }
    if (target_ != nullptr) {
      const absl::Time sent = absl::Now();
      FERRY_RETURN_IF_ERROR(ReadReplies(keys, delta));
      write_latency_ = std::max(absl::Now() - sent, write_latency_ / 2);
      expiry_.set_relative_margin(write_latency_);
    }
    checkpoint_.cursor = batch.cursor_after;
    checkpoint_.done = batch.finished;
    checkpoint_.counters += delta;
    if (callbacks_.on_checkpoint) callbacks_.on_checkpoint(checkpoint_);
    return absl::OkStatus();
  }

 private:
  void Fail(absl::string_view key, std::string reason, ShardCounters& delta) {
    ++delta.failed;
    if (callbacks_.on_failed_key) callbacks_.on_failed_key(std::string(key), reason);
  }

  absl::Status ReadReplies(ReplyView keys, ShardCounters& delta) {
    FERRY_RETURN_IF_ERROR(target_->Flush());
    absl::Status first_fatal;
    for (size_t i = 0; i < keys.size(); ++i) {
      if (sent_[i] == Sent::kNothing) continue;
      FERRY_ASSIGN_OR_RETURN(Reply reply, target_->ReadReply());
      if (sent_[i] == Sent::kDelete && !reply.is_error()) continue;
      if (!reply.is_error()) {
        ++delta.copied;
        continue;
      }
      absl::Status status =
          ReplyStatus("target", sent_[i] == Sent::kDelete ? "DEL" : "RESTORE", reply);
      switch (redis::Classify(status)) {
        case ErrorClass::kPerKey:
          if (status.code() == absl::StatusCode::kAlreadyExists &&
              options_.on_conflict == OnConflict::kSkip) {
            ++delta.skipped;
          } else if (status.code() == absl::StatusCode::kAlreadyExists) {
            Fail(keys.element(i).str(), "exists on the target (--on-conflict fail)", delta);
          } else {
            Fail(keys.element(i).str(), std::string(status.message()), delta);
          }
          break;
        case ErrorClass::kVersion:
          Fail(keys.element(i).str(),
               absl::StrCat("the target cannot read this key's DUMP payload: the source runs a "
                            "newer Redis than the target (",
                            status.message(), ")"),
               delta);
          break;
        default:
          // Fatal or transient: the batch is not checkpointed; keep reading to drain replies.
          if (first_fatal.ok()) first_fatal = status;
      }
    }
    return first_fatal;
  }

  const CopyOptions& options_;
  Connection* target_;  // Null in a dry run.
  ExpiryMapper expiry_;
  Checkpoint& checkpoint_;
  const CopyCallbacks& callbacks_;
  std::vector<Sent> sent_;
  // Recent time from sending a batch to its last reply: how long a RESTORE may wait in the
  // target's queue, for targets that only take relative TTLs.
  absl::Duration write_latency_ = absl::Milliseconds(20);
};

absl::StatusOr<std::string> SourceRunId(Connection& source) {
  absl::StatusOr<Reply> info = source.Command({"INFO", "server"});
  if (info.ok()) return redis::InfoField(info->str(), "run_id");
  // A restricted user may not run INFO: resume checks then rely on the cursor alone.
  if (info.status().code() == absl::StatusCode::kPermissionDenied) return std::string("unknown");
  return info.status();
}

// One attempt: connect both sides and copy until done, cancelled or an error.
absl::Status CopyAttempt(const ShardSpec& spec, const CopyOptions& options, Checkpoint& checkpoint,
                         RateLimiter* limiter, const std::atomic<bool>* cancel,
                         const CopyCallbacks& callbacks) {
  redis::Endpoint source_endpoint = spec.source;
  source_endpoint.db = spec.source_db;
  FERRY_ASSIGN_OR_RETURN(Connection source, Connection::Open(source_endpoint, options.connect));
  std::optional<Connection> target;
  if (!options.dry_run) {
    redis::Endpoint target_endpoint = spec.target;
    target_endpoint.db = spec.target_db;
    FERRY_ASSIGN_OR_RETURN(target, Connection::Open(target_endpoint, options.connect));
  }
  FERRY_ASSIGN_OR_RETURN(std::string run_id, SourceRunId(source));
  if (checkpoint.run_id.empty() || checkpoint.run_id != run_id) {
    if (!checkpoint.run_id.empty()) {
      FERRY_LOG(Warning) << "source " << spec.source.Address() << " db " << spec.source_db
                         << " restarted (new run_id): shard " << spec.shard_index
                         << " starts over from its first cursor";
    }
    checkpoint.cursor = redis::ShardStartCursor(spec.shard_index, spec.shard_bits);
    checkpoint.run_id = run_id;
  }
  BatchQueue queue(options.max_bytes_in_flight);
  ShardReader reader(spec, options, source, limiter, cancel, queue);
  std::thread read_thread([&reader, cursor = checkpoint.cursor] { reader.Run(cursor); });
  FERRY_ASSIGN_OR_RETURN(ExpiryMapper expiry, ExpiryMapper::Measure(target ? &*target : nullptr));
  ShardWriter writer(options, target ? &*target : nullptr, expiry, checkpoint, callbacks);
  absl::Status status;
  while (std::optional<Batch> batch = queue.Pop()) {
    status = writer.Write(*batch);
    if (!status.ok()) break;
  }
  queue.Stop();
  read_thread.join();
  if (status.ok()) status = queue.status();
  return status;
}

}  // namespace

absl::Status CopyShard(const ShardSpec& spec, const CopyOptions& options, const Checkpoint& resume,
                       RateLimiter* limiter, const std::atomic<bool>* cancel,
                       const CopyCallbacks& callbacks) {
  Checkpoint checkpoint = resume;
  int failures = 0;
  absl::Duration backoff = options.initial_backoff;
  while (!checkpoint.done) {
    if (Cancelled(cancel)) return absl::CancelledError("copy cancelled");
    const Checkpoint before = checkpoint;
    absl::Status status = CopyAttempt(spec, options, checkpoint, limiter, cancel, callbacks);
    if (status.ok()) {
      if (!checkpoint.done) return absl::CancelledError("copy cancelled");
      break;
    }
    if (redis::Classify(status) != ErrorClass::kTransient) return status;
    if (checkpoint.cursor != before.cursor || checkpoint.done) {
      failures = 0;  // It moved: a new run of failures starts.
      backoff = options.initial_backoff;
    }
    if (++failures > options.max_retries) {
      return Annotate(status, absl::StrCat("giving up after ", options.max_retries, " retries"));
    }
    FERRY_LOG(Warning) << "shard " << spec.shard_index << " of db " << spec.source_db << ": "
                       << status.message() << "; retrying in " << backoff;
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
  return absl::OkStatus();
}

}  // namespace ferry::agent
