#include "agent/shard_writer.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/dump_compare.h"
#include "common/base/status_macros.h"
#include "common/redis/errors.h"
#include "proto/wire/counters.h"

namespace ferry::agent {
namespace {}  // namespace

ShardWriter::ShardWriter(const CopyOptions& options, redis::Router* target, ExpiryMapper expiry,
                         Checkpoint& checkpoint, const CopyCallbacks& callbacks)
    : options_(options),
      target_(target),
      expiry_(expiry),
      checkpoint_(checkpoint),
      callbacks_(callbacks) {}

absl::Status ShardWriter::Write(const Batch& batch) {
  ferry::v1::Counters delta;
  delta.set_scanned(batch.keys.size());
  sent_.clear();
  ttl_args_.clear();
  ttl_args_.reserve(batch.keys.size());
  for (size_t i = 0; i < batch.keys.size(); ++i) Queue(batch, i, delta);
  if (target_ != nullptr && !sent_.empty()) {
    const absl::Time start = absl::Now();
    if (absl::Status status = ReadReplies(batch, delta); !status.ok()) {
      // A fatal error (OOM, NOPERM, a target that lost data) stops the shard here: what this
      // batch did write is counted, so the summary agrees with the target. The cursor stays
      // before the batch: a resume writes it again.
      if (redis::Classify(status) == redis::ErrorClass::kFatal && delta.copied() > 0) {
        checkpoint_.counters.set_copied(checkpoint_.counters.copied() + delta.copied());
        if (callbacks_.on_checkpoint) callbacks_.on_checkpoint(checkpoint_);
      }
      if (status.code() == absl::StatusCode::kResourceExhausted) {
        return absl::ResourceExhaustedError(
            absl::StrCat(status.message(),
                         " (the target is full: raise its maxmemory or make room, then copy "
                         "again)"));
      }
      return status;
    }
    write_latency_ = std::max(absl::Now() - start, write_latency_ / 2);
    expiry_.set_relative_margin(write_latency_);
  }
  if (batch.cursor_after.has_value()) checkpoint_.cursor = *batch.cursor_after;
  if (batch.walk_end) checkpoint_.scanned = true;
  for (int slot : batch.moved_slots) checkpoint_.rescan.Add(slot);
  wire::AddCounters(checkpoint_.counters, delta);
  if (callbacks_.on_checkpoint) callbacks_.on_checkpoint(checkpoint_);
  return absl::OkStatus();
}

void ShardWriter::Queue(const Batch& batch, size_t i, ferry::v1::Counters& delta) {
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
  if (batch.expiry[i] == kVanished || dump.is_nil()) {
    delta.set_vanished(delta.vanished() + 1);
    return;
  }
  bool absolute = false;
  int64_t ttl = 0;  // RESTORE's "no expiry".
  if (batch.expiry[i] >= 0) {
    // Never extend a TTL (expiry.h).
    const std::optional<int64_t> restore_ttl = expiry_.RestoreTtl(batch.expiry[i]);
    if (!restore_ttl.has_value()) {
      delta.set_expired(delta.expired() + 1);
      if (options_.on_conflict == OnConflict::kReplace && target_ != nullptr) {
        target_->Add({"DEL", key});
        sent_.emplace_back(i, Sent::kDelete);
      }
      return;
    }
    ttl = *restore_ttl;
    absolute = expiry_.absolute();
  }
  delta.set_bytes(delta.bytes() + dump.str().size());
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
                              ferry::v1::Counters& delta) {
  const absl::string_view key = batch.keys[i];
  if (batch.expiry[i] == kVanished) {
    delta.set_vanished(delta.vanished() + 1);
    return;
  }
  absl::string_view argv[6] = {"SET", key, value};
  size_t argc = 3;
  if (batch.expiry[i] >= 0) {
    // Never extend a TTL (expiry.h).
    std::optional<std::pair<absl::string_view, int64_t>> expiry =
        expiry_.SetExpiry(batch.expiry[i]);
    if (!expiry.has_value()) {
      delta.set_expired(delta.expired() + 1);
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
  delta.set_bytes(delta.bytes() + value.size());
  if (target_ == nullptr) return;  // Dry run.
  // SET replaces a key of any type, as RESTORE ... REPLACE does; NX leaves it alone.
  if (options_.on_conflict != OnConflict::kReplace) argv[argc++] = "NX";
  target_->Add(absl::MakeConstSpan(argv, argc));
  sent_.emplace_back(i, Sent::kSet);
}

absl::Status ShardWriter::ReadReplies(const Batch& batch, ferry::v1::Counters& delta) {
  FERRY_ASSIGN_OR_RETURN(std::vector<redis::Reply> replies, target_->Execute());
  absl::Status first_fatal;
  conflicts_.clear();
  for (size_t n = 0; n < sent_.size(); ++n) {
    const auto [i, sent] = sent_[n];
    const redis::Reply& reply = replies[n];
    if (sent == Sent::kSet && reply.is_nil()) {
      conflicts_.push_back(n);  // SET ... NX found the key on the target.
      continue;
    }
    if (!reply.is_error()) {
      if (sent != Sent::kDelete) delta.set_copied(delta.copied() + 1);
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
        if (status.code() == absl::StatusCode::kAlreadyExists) {
          conflicts_.push_back(n);  // BUSYKEY: RESTORE without REPLACE found the key.
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
  // A batch that is written again re-checks its conflicts then.
  if (!first_fatal.ok() || conflicts_.empty()) return first_fatal;
  return CheckConflicts(batch, delta);
}

absl::Status ShardWriter::CheckConflicts(const Batch& batch, ferry::v1::Counters& delta) {
  for (size_t n : conflicts_) {
    const auto [i, sent] = sent_[n];
    target_->Add({sent == Sent::kSet ? "GET" : "DUMP", batch.keys[i]});
  }
  FERRY_ASSIGN_OR_RETURN(std::vector<redis::Reply> replies, target_->Execute());
  for (size_t c = 0; c < conflicts_.size(); ++c) {
    const auto [i, sent] = sent_[conflicts_[c]];
    const redis::Reply& reply = replies[c];
    if (reply.is_error()) {
      absl::Status status = ReplyStatus("target", sent == Sent::kSet ? "GET" : "DUMP", reply);
      // WRONGTYPE (GET of a non-string) and other per-key errors: the target holds something
      // else.
      if (redis::Classify(status) != redis::ErrorClass::kPerKey) return status;
      Conflict(batch, i, delta);
    } else if (reply.is_nil()) {
      // Gone since the write: a TTL (ours, never longer than the source's) ran out, or
      // someone deleted it on the target.
      if (batch.expiry[i] >= 0) {
        delta.set_expired(delta.expired() + 1);
      } else {
        Conflict(batch, i, delta);
      }
    } else if (sent == Sent::kSet ? reply.str() == *batch.string_value[i]
                                  : SameDumpValue(batch.dump[i].str(), reply.str())) {
      delta.set_copied(delta.copied() + 1);
    } else {
      Conflict(batch, i, delta);
    }
  }
  return absl::OkStatus();
}

void ShardWriter::Conflict(const Batch& batch, size_t i, ferry::v1::Counters& delta) {
  if (options_.on_conflict == OnConflict::kSkip) {
    delta.set_skipped(delta.skipped() + 1);
  } else {
    Fail(batch.keys[i], "exists on the target (the conflict policy is fail)", delta);
  }
}

void ShardWriter::Fail(absl::string_view key, std::string reason, ferry::v1::Counters& delta) {
  delta.set_failed(delta.failed() + 1);
  if (callbacks_.on_failed_key) callbacks_.on_failed_key(std::string(key), reason);
}

}  // namespace ferry::agent
