#include "agent/shard_writer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/redis/errors.h"

namespace ferry::agent {

ShardWriter::ShardWriter(const CopyOptions& options, redis::Router* target, ExpiryMapper expiry,
                         Checkpoint& checkpoint, const CopyCallbacks& callbacks)
    : options_(options),
      target_(target),
      expiry_(expiry),
      checkpoint_(checkpoint),
      callbacks_(callbacks) {}

absl::Status ShardWriter::Write(const Batch& batch) {
  ShardCounters delta;
  delta.scanned = batch.keys.size();
  sent_.clear();
  ttl_args_.clear();
  ttl_args_.reserve(batch.keys.size());
  for (size_t i = 0; i < batch.keys.size(); ++i) Queue(batch, i, delta);
  if (target_ != nullptr && !sent_.empty()) {
    const absl::Time start = absl::Now();
    FERRY_RETURN_IF_ERROR(ReadReplies(batch, delta));
    write_latency_ = std::max(absl::Now() - start, write_latency_ / 2);
    expiry_.set_relative_margin(write_latency_);
  }
  if (batch.cursor_after.has_value()) checkpoint_.cursor = *batch.cursor_after;
  if (batch.walk_end) checkpoint_.scanned = true;
  for (int slot : batch.moved_slots) checkpoint_.rescan.Add(slot);
  checkpoint_.counters += delta;
  if (callbacks_.on_checkpoint) callbacks_.on_checkpoint(checkpoint_);
  return absl::OkStatus();
}

void ShardWriter::Queue(const Batch& batch, size_t i, ShardCounters& delta) {
  if (i < batch.string_value.size() && batch.string_value[i].has_value()) {
    QueueString(batch, i, *batch.string_value[i], delta);
    return;
  }
  const absl::string_view key = batch.keys[i];
  const redis::ReplyView dump = batch.dump[i];
  if (dump.is_error()) {
    Fail(key, absl::StrCat("cannot read from the source: ", dump.str()), delta);
    return;
  }
  if (batch.pttl[i] == -2 || dump.is_nil()) {
    ++delta.vanished;
    return;
  }
  bool absolute = false;
  int64_t ttl = 0;  // RESTORE's "no expiry".
  if (batch.pttl[i] >= 0) {
    // Never extend a TTL (expiry.h).
    const std::optional<int64_t> restore_ttl = expiry_.RestoreTtl(batch.pttl[i], batch.read_time);
    if (!restore_ttl.has_value()) {
      ++delta.expired;
      if (options_.on_conflict == OnConflict::kReplace && target_ != nullptr) {
        target_->Add({"DEL", key});
        sent_.emplace_back(i, Sent::kDelete);
      }
      return;
    }
    ttl = *restore_ttl;
    absolute = expiry_.absolute();
  }
  delta.bytes += dump.str().size();
  if (target_ == nullptr) return;  // Dry run.
  ttl_args_.push_back(std::to_string(ttl));
  absl::string_view argv[6] = {"RESTORE", key, ttl_args_.back(), dump.str()};
  size_t argc = 4;
  if (options_.on_conflict == OnConflict::kReplace) argv[argc++] = "REPLACE";
  if (absolute) argv[argc++] = "ABSTTL";
  target_->Add(absl::MakeConstSpan(argv, argc));
  sent_.emplace_back(i, Sent::kRestore);
}

void ShardWriter::QueueString(const Batch& batch, size_t i, absl::string_view value,
                              ShardCounters& delta) {
  const absl::string_view key = batch.keys[i];
  if (batch.pttl[i] == -2) {
    ++delta.vanished;
    return;
  }
  absl::string_view argv[6] = {"SET", key, value};
  size_t argc = 3;
  if (batch.pttl[i] >= 0) {
    // Never extend a TTL (expiry.h).
    std::optional<std::pair<absl::string_view, int64_t>> expiry =
        expiry_.SetExpiry(batch.pttl[i], batch.read_time);
    if (!expiry.has_value()) {
      ++delta.expired;
      if (options_.on_conflict == OnConflict::kReplace && target_ != nullptr) {
        target_->Add({"DEL", key});
        sent_.emplace_back(i, Sent::kDelete);
      }
      return;
    }
    ttl_args_.push_back(std::to_string(expiry->second));
    argv[argc++] = expiry->first;
    argv[argc++] = ttl_args_.back();
  }
  delta.bytes += value.size();
  if (target_ == nullptr) return;  // Dry run.
  // SET replaces a key of any type, as RESTORE ... REPLACE does; NX leaves it alone.
  if (options_.on_conflict != OnConflict::kReplace) argv[argc++] = "NX";
  target_->Add(absl::MakeConstSpan(argv, argc));
  sent_.emplace_back(i, Sent::kSet);
}

absl::Status ShardWriter::ReadReplies(const Batch& batch, ShardCounters& delta) {
  FERRY_ASSIGN_OR_RETURN(std::vector<redis::Reply> replies, target_->Execute());
  absl::Status first_fatal;
  for (size_t n = 0; n < sent_.size(); ++n) {
    const auto [i, sent] = sent_[n];
    const redis::Reply& reply = replies[n];
    if (sent == Sent::kSet && reply.is_nil()) {
      // SET ... NX found the key on the target.
      if (options_.on_conflict == OnConflict::kSkip) {
        ++delta.skipped;
      } else {
        Fail(batch.keys[i], "exists on the target (--on-conflict fail)", delta);
      }
      continue;
    }
    if (!reply.is_error()) {
      if (sent != Sent::kDelete) ++delta.copied;
      continue;
    }
    const absl::string_view key = batch.keys[i];
    absl::Status status = ReplyStatus("target",
                                      sent == Sent::kDelete ? "DEL"
                                      : sent == Sent::kSet  ? "SET"
                                                            : "RESTORE",
                                      reply);
    switch (redis::Classify(status)) {
      case redis::ErrorClass::kPerKey:
        if (status.code() == absl::StatusCode::kAlreadyExists &&
            options_.on_conflict == OnConflict::kSkip) {
          ++delta.skipped;
        } else if (status.code() == absl::StatusCode::kAlreadyExists) {
          Fail(key, "exists on the target (--on-conflict fail)", delta);
        } else {
          Fail(key, std::string(status.message()), delta);
        }
        break;
      case redis::ErrorClass::kVersion:
        Fail(key,
             absl::StrCat("the target cannot read this key's DUMP payload: the source runs a "
                          "newer Redis than the target (",
                          status.message(), ")"),
             delta);
        break;
      case redis::ErrorClass::kRedirect:
        // Still MOVED or ASK when the router's retries ran out: the target's layout is
        // changing; the batch is written again.
        if (first_fatal.ok()) first_fatal = absl::UnavailableError(status.message());
        break;
      default:
        // Fatal or transient: the batch is not checkpointed.
        if (first_fatal.ok()) first_fatal = status;
    }
  }
  return first_fatal;
}

void ShardWriter::Fail(absl::string_view key, std::string reason, ShardCounters& delta) {
  ++delta.failed;
  if (callbacks_.on_failed_key) callbacks_.on_failed_key(std::string(key), reason);
}

}  // namespace ferry::agent
