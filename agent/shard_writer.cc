#include "agent/shard_writer.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/dump_compare.h"
#include "agent/stream_copy.h"
#include "common/base/status_macros.h"
#include "common/redis/errors.h"
#include "common/redis/info.h"
#include "proto/wire/counters.h"

namespace ferry::agent {
namespace {

// Elements per HSET/RPUSH/SADD/ZADD when a value read type by type is rebuilt.
constexpr int kMaxElementsPerCommand = 500;

const char* CommandName(int sent_kind) {
  static const char* const kNames[] = {"RESTORE", "SET", "DEL", "write", "RENAME"};
  return kNames[sent_kind];
}

// Bytes of the strings in a reply.
uint64_t ValueBytes(redis::ReplyView reply) {
  if (!reply.is_array()) return reply.str().size();
  uint64_t bytes = 0;
  for (size_t i = 0; i < reply.size(); ++i) bytes += ValueBytes(reply.element(i));
  return bytes;
}

// Key i's string value: from MGET, or (read type by type) from GET.
std::optional<absl::string_view> StringOf(const Batch& batch, size_t i) {
  if (i < batch.string_value.size() && batch.string_value[i].has_value()) {
    return batch.string_value[i];
  }
  if (i < batch.type.size() && batch.type[i] == "string" && !batch.dump[i].is_error() &&
      !batch.dump[i].is_nil()) {
    return batch.dump[i].str();
  }
  return std::nullopt;
}

}  // namespace

ShardWriter::ShardWriter(const CopyOptions& options, redis::Router* target, ExpiryMapper expiry,
                         const TargetFacts* target_facts, Checkpoint& checkpoint,
                         const CopyCallbacks& callbacks)
    : options_(options),
      target_(target),
      expiry_(expiry),
      checkpoint_(checkpoint),
      callbacks_(callbacks),
      target_facts_(target_facts) {}

absl::Status ShardWriter::Write(const Batch& batch) {
  ferry::v1::Counters delta;
  delta.set_scanned(batch.keys.size() + batch.individual.size());
  sent_.clear();
  arena_.clear();
  unreadable_.clear();
  tmp_of_.assign(batch.keys.size(), absl::string_view());
  failed_.assign(batch.keys.size(), false);
  for (size_t i = 0; i < batch.keys.size(); ++i) Queue(batch, i, delta);
  absl::Status status;
  if (target_ != nullptr && !sent_.empty()) {
    const absl::Time start = absl::Now();
    status = ReadReplies(batch, delta);
    if (status.ok()) {
      write_latency_ = std::max(absl::Now() - start, write_latency_ / 2);
      expiry_.set_relative_margin(write_latency_);
    }
  }
  for (const std::string& key : batch.individual) {
    if (!status.ok()) break;
    status = CopyIndividually(batch, key, delta);
  }
  for (const std::string& key : unreadable_) {
    if (!status.ok()) break;
    status = CopyIndividually(batch, key, delta);
  }
  if (!status.ok()) {
    // A fatal error (OOM, NOPERM, a target that lost data) stops the shard here: what this
    // batch did write is counted, so the summary agrees with the target. The cursor stays
    // before the batch: a resume writes it again.
    if (redis::Classify(status) == redis::ErrorClass::kFatal && delta.copied() > 0) {
      checkpoint_.counters.set_copied(checkpoint_.counters.copied() + delta.copied());
      checkpoint_.counters.set_resent(checkpoint_.counters.resent() + delta.resent());
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
  CheckpointAfter(batch, delta, checkpoint_, callbacks_);
  return absl::OkStatus();
}

std::optional<int64_t> ShardWriter::TtlOrExpire(const Batch& batch, size_t i,
                                                ferry::v1::Counters& delta) {
  if (batch.expiry[i] < 0) return 0;  // RESTORE's "no expiry".
  // Never extend a TTL (expiry.h).
  std::optional<int64_t> ttl = expiry_.RestoreTtl(batch.expiry[i]);
  if (ttl.has_value()) return ttl;
  delta.set_expired(delta.expired() + 1);
  if (options_.on_conflict == OnConflict::kReplace && target_ != nullptr) {
    target_->Add({"DEL", batch.keys[i]});
    sent_.emplace_back(i, Sent::kDelete);
  }
  return std::nullopt;
}

void ShardWriter::Queue(const Batch& batch, size_t i, ferry::v1::Counters& delta) {
  if (std::optional<absl::string_view> value = StringOf(batch, i); value.has_value()) {
    QueueString(batch, i, *value, delta);
    return;
  }
  const absl::string_view key = batch.keys[i];
  const redis::ReplyView dump = batch.dump[i];
  if (dump.is_error()) {
    Fail(key, absl::StrCat("cannot read from the source: ", dump.str()), delta);
    return;
  }
  if (batch.expiry[i] == kVanished || dump.is_nil()) {
    Vanished(batch, i, delta);
    return;
  }
  if (i < batch.type.size() && !batch.type[i].empty()) {
    QueueTyped(batch, i, delta);
    return;
  }
  const std::optional<int64_t> ttl = TtlOrExpire(batch, i, delta);
  if (!ttl.has_value()) return;
  delta.set_bytes(delta.bytes() + dump.str().size());
  if (target_ == nullptr) return;  // Dry run.
  const std::string& ttl_arg = arena_.emplace_back(std::to_string(*ttl));
  absl::string_view argv[6] = {"RESTORE", key, ttl_arg, dump.str()};
  size_t argc = 4;
  if (options_.on_conflict == OnConflict::kReplace) argv[argc++] = "REPLACE";
  if (batch.expiry[i] >= 0 && expiry_.absolute()) argv[argc++] = "ABSTTL";
  target_->Add(absl::MakeConstSpan(argv, argc));
  sent_.emplace_back(i, Sent::kRestore);
}

void ShardWriter::QueueTyped(const Batch& batch, size_t i, ferry::v1::Counters& delta) {
  const absl::string_view key = batch.keys[i];
  const absl::string_view type = batch.type[i];
  if (target_facts_ != nullptr) {
    // The reason ValueCopier gives (a stream into a target without streams).
    if (std::optional<std::string> refusal = CannotHold(type, target_facts_->caps)) {
      Fail(key, *std::move(refusal), delta);
      return;
    }
  }
  const std::optional<int64_t> ttl = TtlOrExpire(batch, i, delta);
  if (!ttl.has_value()) return;
  const redis::ReplyView value = batch.dump[i];
  if (value.is_array() && value.size() == 0) {
    Vanished(batch, i, delta);  // Gone between the probe and the read.
    return;
  }
  delta.set_bytes(delta.bytes() + (type == "stream" ? StreamEntryBytes(value) : ValueBytes(value)));
  if (target_ == nullptr) return;  // Dry run.
  tmp_of_[i] = arena_.emplace_back(temp_keys_.For(key));
  RebuildOptions rebuild;
  rebuild.max_per_command = kMaxElementsPerCommand;
  rebuild.source_caps = batch.source_caps;
  rebuild.target_caps = &target_facts_->caps;
  rebuild.source_now_ms =
      absl::ToUnixMillis(absl::Now()) + (batch.clock ? batch.clock->max_offset_ms() : 0);
  const size_t parts = AppendRebuild(*target_, type, tmp_of_[i], value, rebuild, arena_);
  const size_t finish = AppendFinish(
      *target_, tmp_of_[i], key, batch.expiry[i] >= 0 ? ttl : std::nullopt, expiry_.absolute(),
      options_.on_conflict == OnConflict::kReplace, /*unlink_first=*/false, arena_);
  for (size_t n = 0; n + 1 < parts + finish; ++n) sent_.emplace_back(i, Sent::kTypedPart);
  sent_.emplace_back(i, Sent::kRename);
}

void ShardWriter::QueueString(const Batch& batch, size_t i, absl::string_view value,
                              ferry::v1::Counters& delta) {
  const absl::string_view key = batch.keys[i];
  if (batch.expiry[i] == kVanished) {
    Vanished(batch, i, delta);
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
    argv[argc++] = expiry->first;
    argv[argc++] = arena_.emplace_back(std::to_string(expiry->second));
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
    // SET ... NX or RENAMENX found the key on the target.
    if ((sent == Sent::kSet && reply.is_nil()) ||
        (sent == Sent::kRename && reply.is_integer() && reply.integer() == 0)) {
      conflicts_.push_back(n);
      continue;
    }
    if (!reply.is_error()) {
      const bool written = sent == Sent::kRestore || sent == Sent::kSet || sent == Sent::kRename;
      if (written && !failed_[i]) Copied(batch.keys[i], delta);
      continue;
    }
    const absl::string_view key = batch.keys[i];
    absl::Status status = ReplyStatus("target", CommandName(static_cast<int>(sent)), reply);
    switch (redis::Classify(status)) {
      case redis::ErrorClass::kPerKey:
        if (status.code() == absl::StatusCode::kAlreadyExists) {
          conflicts_.push_back(n);  // BUSYKEY: RESTORE without REPLACE found the key.
        } else if (!failed_[i]) {
          // A failed part leaves the RENAME without its temporary key: one failure per key.
          failed_[i] = true;
          Fail(key, std::string(status.message()), delta);
        }
        break;
      case redis::ErrorClass::kVersion:
        // The target cannot read this payload after all: copied type by type.
        unreadable_.emplace_back(key);
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
  std::vector<size_t> dumps;
  std::vector<size_t> streams;
  for (size_t n : conflicts_) {
    const auto [i, sent] = sent_[n];
    const bool stream = sent == Sent::kRename && batch.type[i] == "stream";
    (stream ? streams : dumps).push_back(n);
  }
  if (!dumps.empty()) FERRY_RETURN_IF_ERROR(CheckDumpConflicts(batch, dumps, delta));
  for (size_t n : streams) FERRY_RETURN_IF_ERROR(CheckStreamConflict(batch, sent_[n].first, delta));
  return absl::OkStatus();
}

absl::Status ShardWriter::CheckDumpConflicts(const Batch& batch,
                                             const std::vector<size_t>& conflicts,
                                             ferry::v1::Counters& delta) {
  for (size_t n : conflicts) {
    const auto [i, sent] = sent_[n];
    target_->Add({sent == Sent::kSet ? "GET" : "DUMP", batch.keys[i]});
    // A value built type by type is compared with what its temporary key holds, then removed.
    if (sent == Sent::kRename) {
      target_->Add({"DUMP", tmp_of_[i]});
      target_->Add({"UNLINK", tmp_of_[i]});
    }
  }
  FERRY_ASSIGN_OR_RETURN(std::vector<redis::Reply> replies, target_->Execute());
  size_t r = 0;
  for (size_t n : conflicts) {
    const auto [i, sent] = sent_[n];
    const redis::Reply& reply = replies[r++];
    std::optional<absl::string_view> ours;
    if (sent == Sent::kRename) {
      const redis::Reply& built = replies[r];
      r += 2;
      if (!built.is_error() && !built.is_nil()) ours = built.str();
    }
    if (reply.is_error()) {
      absl::Status status = ReplyStatus("target", sent == Sent::kSet ? "GET" : "DUMP", reply);
      // WRONGTYPE (GET of a non-string) and other per-key errors: the target holds something
      // else.
      if (redis::Classify(status) != redis::ErrorClass::kPerKey) return status;
      Conflict(batch, i, delta);
    } else if (reply.is_nil()) {
      Gone(batch, i, delta);
    } else if (sent == Sent::kSet      ? reply.str() == *StringOf(batch, i)
               : sent == Sent::kRename ? ours.has_value() && SameDumpValue(*ours, reply.str())
                                       : SameDumpValue(batch.dump[i].str(), reply.str())) {
      Copied(batch.keys[i], delta);
    } else {
      Conflict(batch, i, delta);
    }
  }
  return absl::OkStatus();
}

absl::Status ShardWriter::CheckStreamConflict(const Batch& batch, size_t i,
                                              ferry::v1::Counters& delta) {
  const int limit = ValueCopyOptions().page_elements;  // As ValueCopier compares.
  FERRY_ASSIGN_OR_RETURN(std::optional<std::string> ours,
                         StreamFingerprint(*target_, tmp_of_[i], limit));
  FERRY_ASSIGN_OR_RETURN(std::optional<std::string> theirs,
                         StreamFingerprint(*target_, batch.keys[i], limit));
  target_->Add({"EXISTS", batch.keys[i]});
  target_->Add({"UNLINK", tmp_of_[i]});
  FERRY_ASSIGN_OR_RETURN(std::vector<redis::Reply> replies, target_->Execute());
  if (replies[0].is_integer() && replies[0].integer() == 0) {
    Gone(batch, i, delta);
  } else if (ours.has_value() && theirs.has_value() && *ours == *theirs) {
    Copied(batch.keys[i], delta);
  } else {
    Conflict(batch, i, delta);
  }
  return absl::OkStatus();
}

void ShardWriter::Gone(const Batch& batch, size_t i, ferry::v1::Counters& delta) {
  // A TTL (ours, never longer than the source's) ran out, or someone deleted it on the target.
  if (batch.expiry[i] >= 0) {
    delta.set_expired(delta.expired() + 1);
  } else {
    Conflict(batch, i, delta);
  }
}

void ShardWriter::Conflict(const Batch& batch, size_t i, ferry::v1::Counters& delta) {
  if (options_.on_conflict == OnConflict::kSkip) {
    delta.set_skipped(delta.skipped() + 1);
  } else {
    Fail(batch.keys[i], "exists on the target (the conflict policy is fail)", delta);
  }
}

void ShardWriter::Vanished(const Batch& batch, size_t i, ferry::v1::Counters& delta) {
  delta.set_vanished(delta.vanished() + 1);
  if (!delete_vanished_ || target_ == nullptr) return;
  target_->Add({"DEL", batch.keys[i]});
  sent_.emplace_back(i, Sent::kDelete);
}

void ShardWriter::Fail(absl::string_view key, std::string reason, ferry::v1::Counters& delta) {
  delta.set_failed(delta.failed() + 1);
  if (callbacks_.on_failed_key) callbacks_.on_failed_key(std::string(key), reason);
}

absl::Status ShardWriter::OpenSideSource(const Batch& batch) {
  if (batch.source == nullptr) return absl::InternalError("batch without its source node");
  if (side_source_.has_value() && !side_source_->broken() &&
      side_source_->endpoint().Address() == batch.source->Address() &&
      side_source_->endpoint().db == batch.source->db) {
    return absl::OkStatus();
  }
  side_source_.reset();
  absl::StatusOr<redis::Connection> source =
      redis::Connection::Open(*batch.source, options_.SourceConnect());
  if (!source.ok()) return Annotate(source.status(), "source");
  if (batch.replica) {
    absl::Status readonly = source->Command({"READONLY"}).status();
    if (!readonly.ok()) return Annotate(readonly, "source");
  }
  FERRY_ASSIGN_OR_RETURN(side_caps_, redis::ReadCapabilities(*source));
  FERRY_ASSIGN_OR_RETURN(side_clock_, AbsoluteExpiryClock(*source, side_caps_));
  side_source_ = *std::move(source);
  return absl::OkStatus();
}

void ShardWriter::Copied(absl::string_view key, ferry::v1::Counters& delta) {
  if (!count_distinct_ || written_.insert(absl::Hash<absl::string_view>()(key)).second) {
    delta.set_copied(delta.copied() + 1);
  } else {
    delta.set_resent(delta.resent() + 1);
  }
}

absl::Status ShardWriter::CopyIndividually(const Batch& batch, absl::string_view key,
                                           ferry::v1::Counters& delta) {
  if (target_ == nullptr) return absl::OkStatus();  // Dry run: counted as scanned.
  FERRY_RETURN_IF_ERROR(OpenSideSource(batch));
  ValueCopyOptions options;
  options.on_conflict = options_.on_conflict;
  options.drop_field_ttls = options_.drop_field_ttls;
  ValueCopier copier(*side_source_, side_caps_, side_clock_, *target_, target_facts_->caps, expiry_,
                     temp_keys_, options);
  FERRY_ASSIGN_OR_RETURN(const KeyCopy copy, copier.Copy(key));
  switch (copy.outcome) {
    case KeyCopy::Outcome::kCopied:
      Copied(key, delta);
      delta.set_bytes(delta.bytes() + copy.bytes);
      break;
    case KeyCopy::Outcome::kVanished:
      delta.set_vanished(delta.vanished() + 1);
      if (delete_vanished_) {
        target_->Add({"DEL", key});
        FERRY_ASSIGN_OR_RETURN(std::vector<redis::Reply> deleted, target_->Execute());
        if (deleted[0].is_error()) {
          absl::Status status = ReplyStatus("target", "DEL", deleted[0]);
          if (redis::Classify(status) != redis::ErrorClass::kPerKey) return status;
          Fail(key, std::string(status.message()), delta);
        }
      }
      break;
    case KeyCopy::Outcome::kExpired:
      delta.set_expired(delta.expired() + 1);
      break;
    case KeyCopy::Outcome::kSkipped:
      delta.set_skipped(delta.skipped() + 1);
      break;
    case KeyCopy::Outcome::kFailed:
      Fail(key, copy.reason, delta);
      break;
  }
  return absl::OkStatus();
}

}  // namespace ferry::agent
