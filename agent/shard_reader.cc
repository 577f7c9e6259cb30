#include "agent/shard_reader.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/rate_limiter.h"
#include "agent/value_copy.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/redis/dump_payload.h"
#include "common/redis/errors.h"
#include "proto/wire/counters.h"

namespace ferry::agent {
namespace {

using redis::Reply;
using redis::ReplyView;

// Slots with more keys than this are read by a SCAN of the node rather than by one
// GETKEYSINSLOT reply.
constexpr int64_t kMaxKeysPerSlotReply = 20000;
// A PTTL answer is taken as given when its command was sent; a round trip longer than this
// (a stalled or far source) would shorten TTLs by as much, so they are read again.
constexpr absl::Duration kMaxTtlUncertainty = absl::Milliseconds(500);
// Rounds of reading slow TTLs again before the last one is kept (it is still never extended).
constexpr int kMaxTtlRereads = 3;

// What one reply element costs in memory beyond its bytes: hiredis's redisReply and the
// allocation of its string.
constexpr uint64_t kReplyOverhead = 64;

// Memory a reply holds, for the queue's bound: values read type by type are many small strings.
uint64_t ReplyBytes(ReplyView reply) {
  if (!reply.is_array()) return reply.str().size() + kReplyOverhead;
  uint64_t bytes = kReplyOverhead;
  for (size_t i = 0; i < reply.size(); ++i) bytes += ReplyBytes(reply.element(i));
  return bytes;
}

}  // namespace

void EraseKeys(Batch& batch, const std::vector<bool>& erase) {
  size_t kept = 0;
  for (size_t i = 0; i < batch.keys.size(); ++i) {
    if (erase[i]) continue;
    // A self-move would leave a string (a type) empty.
    if (kept == i) {
      ++kept;
      continue;
    }
    batch.keys[kept] = batch.keys[i];
    if (i < batch.expiry.size()) batch.expiry[kept] = batch.expiry[i];
    if (i < batch.dump.size()) batch.dump[kept] = std::move(batch.dump[i]);
    if (i < batch.type.size()) batch.type[kept] = std::move(batch.type[i]);
    if (i < batch.string_value.size()) batch.string_value[kept] = batch.string_value[i];
    ++kept;
  }
  const auto shrink = [kept](auto& v) {
    if (v.size() > kept) v.resize(kept);
  };
  shrink(batch.keys);
  shrink(batch.expiry);
  shrink(batch.dump);
  shrink(batch.type);
  shrink(batch.string_value);
}

void CheckpointAfter(const Batch& batch, const ferry::v1::Counters& delta, Checkpoint& checkpoint,
                     const CopyCallbacks& callbacks) {
  if (batch.cursor_after.has_value()) checkpoint.cursor = *batch.cursor_after;
  if (batch.walk_end) checkpoint.scanned = true;
  for (int slot : batch.moved_slots) checkpoint.rescan.Add(slot);
  wire::AddCounters(checkpoint.counters, delta);
  if (callbacks.on_batch) callbacks.on_batch();
  if (callbacks.on_checkpoint) callbacks.on_checkpoint(checkpoint);
}

absl::Status ReplyStatus(absl::string_view side, absl::string_view command, ReplyView reply) {
  return Annotate(redis::StatusFromReplyError(reply.str()), absl::StrCat(side, " ", command));
}

ShardReader::ShardReader(const ShardSpec& spec, const CopyOptions& options,
                         redis::Connection& source, bool replica, std::optional<SourceClock> clock,
                         ReadPath path, RateLimiter* limiter, const std::atomic<bool>* cancel,
                         BatchQueue& queue)
    : spec_(spec),
      options_(options),
      source_(source),
      replica_(replica),
      limiter_(limiter),
      cancel_(cancel),
      queue_(queue),
      clock_(clock),
      path_(path),
      typed_(path.typed),
      filter_types_(!spec.type.empty() && !path.source.scan_type()) {}

void ShardReader::AppendTtl(absl::string_view key) {
  source_.Append({clock_.has_value() ? "PEXPIRETIME" : "PTTL", key});
}

absl::Status ShardReader::RereadSlowTtls(Batch& batch, absl::Time sent, bool scan_pending) {
  for (int round = 0; round < kMaxTtlRereads; ++round) {
    if (clock_.has_value() || absl::Now() - sent <= kMaxTtlUncertainty) return absl::OkStatus();
    std::vector<size_t> timed;
    for (size_t i = 0; i < batch.keys.size(); ++i) {
      if (batch.expiry[i] >= 0) timed.push_back(i);
    }
    if (timed.empty()) return absl::OkStatus();
    if (scan_pending && !prefetched_.has_value()) {
      FERRY_ASSIGN_OR_RETURN(prefetched_, source_.ReadReply());
    }
    for (size_t i : timed) AppendTtl(batch.keys[i]);
    sent = absl::Now();
    FERRY_RETURN_IF_ERROR(source_.Flush());
    for (size_t i : timed) {
      FERRY_ASSIGN_OR_RETURN(Reply pttl, source_.ReadReply());
      if (pttl.is_error()) {
        absl::Status status = ReplyStatus("source", "PTTL", pttl);
        if (redis::Classify(status) != redis::ErrorClass::kPerKey) return status;
      }
      batch.expiry[i] = pttl.is_error() ? kVanished : LocalExpiry(pttl.integer(), clock_, sent);
    }
  }
  return absl::OkStatus();
}

absl::Status ShardReader::Walk(const ShardWalk& walk, uint64_t cursor) {
  // The node's key count sizes the SCANs near the shard's end (ShardWalk::ScanCount); unknown
  // (DBSIZE refused) leaves them at the batch size.
  absl::StatusOr<Reply> keys = source_.Command({"DBSIZE"});
  if (!keys.ok() && redis::Classify(keys.status()) == redis::ErrorClass::kTransient) {
    return keys.status();
  }
  walk_ = &walk;
  exact_steps_ = 0;
  tail_cap_ = 0;
  db_keys_ = keys.ok() && keys->is_integer() ? static_cast<uint64_t>(keys->integer()) : 0;
  return ScanLoop(
      cursor, /*walk=*/true, [&walk](uint64_t next) { return walk.Finished(next); },
      [&walk](absl::string_view key) { return walk.Keep(key); });
}

absl::Status ShardReader::ReadSlots(const redis::SlotSet& slots) {
  walk_ = nullptr;            // A whole-node SCAN: every COUNT is the batch size.
  redis::SlotSet scan_slots;  // Read by one filtered SCAN of the node.
  if (!spec_.match.empty() || !spec_.type.empty()) scan_slots = slots;
  std::vector<int> listed;
  if (scan_slots.empty()) {
    for (const auto& [first, last] : slots.Ranges()) {
      for (int slot = first; slot <= last; ++slot) {
        source_.Append({"CLUSTER", "COUNTKEYSINSLOT", std::to_string(slot)});
        listed.push_back(slot);
      }
    }
    FERRY_RETURN_IF_ERROR(source_.Flush());
  }
  std::vector<std::pair<int, int64_t>> counts;
  for (int slot : listed) {
    FERRY_ASSIGN_OR_RETURN(Reply count, source_.ReadReply());
    // Refused (a restricted user): the SCAN path needs no CLUSTER subcommand.
    if (count.is_error()) {
      scan_slots.Add(slot);
    } else if (count.integer() > kMaxKeysPerSlotReply) {
      scan_slots.Add(slot);
    } else if (count.integer() > 0) {
      counts.emplace_back(slot, count.integer());
    }
  }
  for (const auto& [slot, count] : counts) {
    if (Stopping()) return absl::OkStatus();
    const std::string slot_arg = std::to_string(slot);
    const std::string count_arg = std::to_string(count);
    source_.Append({"CLUSTER", "GETKEYSINSLOT", slot_arg, count_arg});
    FERRY_RETURN_IF_ERROR(source_.Flush());
    FERRY_ASSIGN_OR_RETURN(Reply reply, source_.ReadReply());
    if (reply.is_error()) {
      scan_slots.Add(slot);
      continue;
    }
    auto owner = std::make_shared<const Reply>(std::move(reply));
    const size_t size = owner->size();
    for (size_t begin = 0; begin < size; begin += options_.batch_keys) {
      Batch batch;
      batch.owners.push_back(owner);
      for (size_t i = begin; i < std::min(size, begin + options_.batch_keys); ++i) {
        batch.keys.push_back(owner->element(i).str());
      }
      if (!Admit(batch.keys.size())) return absl::OkStatus();
      FERRY_RETURN_IF_ERROR(ReadDumps(batch, /*then_scan=*/false, 0));
      if (!Paid(batch) || !queue_.Push(std::move(batch))) return absl::OkStatus();
    }
  }
  if (scan_slots.empty()) return absl::OkStatus();
  return ScanLoop(
      0, /*walk=*/false, [](uint64_t next) { return next == 0; },
      [&scan_slots](absl::string_view key) { return scan_slots.Contains(redis::KeySlot(key)); });
}

absl::StatusOr<Batch> ShardReader::ReadKeys(const std::vector<std::string>& keys) {
  walk_ = nullptr;
  Batch batch;
  batch.keys.assign(keys.begin(), keys.end());
  FERRY_RETURN_IF_ERROR(ReadDumps(batch, /*then_scan=*/false, 0));
  return batch;
}

void ShardReader::AppendScan(uint64_t cursor, bool one) {
  const std::string cursor_arg = std::to_string(cursor);
  scan_start_ = cursor;
  scan_count_ = one ? 1
                : walk_ != nullptr
                    ? walk_->ScanCount(cursor, db_keys_, options_.batch_keys, ExactEnds())
                    : options_.batch_keys;
  if (tail_cap_ > 0) scan_count_ = std::min(scan_count_, tail_cap_);
  if (scan_count_ == 1) ++exact_steps_;
  const std::string count = std::to_string(scan_count_);
  std::vector<absl::string_view> argv = {"SCAN", cursor_arg, "COUNT", count};
  if (!spec_.match.empty()) argv.insert(argv.end(), {"MATCH", spec_.match});
  if (!spec_.type.empty() && !filter_types_) argv.insert(argv.end(), {"TYPE", spec_.type});
  source_.Append(argv);
}

template <typename Finished, typename Keep>
absl::Status ShardReader::ScanLoop(uint64_t cursor, bool walk, const Finished& finished,
                                   const Keep& keep) {
  // The SCAN for batch n+1 travels in the same flush as the PTTL/DUMP round of batch n.
  AppendScan(cursor);
  FERRY_RETURN_IF_ERROR(source_.Flush());
  Batch batch;  // Keys read so far and not yet pushed.
  for (;;) {
    if (Stopping()) return absl::OkStatus();
    Reply scan;
    if (prefetched_.has_value()) {
      scan = *std::move(prefetched_);
      prefetched_.reset();
    } else {
      FERRY_ASSIGN_OR_RETURN(scan, source_.ReadReply());
    }
    if (scan.is_error()) return ReplyStatus("source", "SCAN", scan);
    if (!scan.is_array() || scan.size() != 2) {
      return absl::InternalError("source SCAN: unexpected reply shape");
    }
    uint64_t next = 0;
    if (!absl::SimpleAtoi(scan.element(0).str(), &next)) {
      return absl::InternalError("source SCAN: bad cursor");
    }
    const bool past_end = walk && walk_ != nullptr && walk_->PastEnd(next);
    if (past_end && scan_count_ > 1 && ExactEnds()) {
      // It ran into the next shard with keys of both: read from its start again with half the
      // COUNT (DBSIZE promised more keys than were left), down to one position per call, so
      // that each key is this shard's or the next one's, never both's.
      tail_cap_ = std::max(1, scan_count_ / 2);
      AppendScan(scan_start_);
      FERRY_RETURN_IF_ERROR(source_.Flush());
      continue;
    }
    const bool last = finished(next);
    // A COUNT 1 call that ran past the shard's end returned the next shard's keys only.
    const bool theirs = past_end && scan_count_ == 1;
    const auto& owner = batch.owners.emplace_back(std::make_shared<const Reply>(std::move(scan)));
    const ReplyView keys = owner->element(1);
    for (size_t i = 0; i < keys.size() && !theirs; ++i) {
      if (keep(keys.element(i).str())) batch.keys.push_back(keys.element(i).str());
    }
    if (walk) {
      batch.cursor_after = next;
      batch.walk_end = last;
    }
    // The short SCANs near a shard's end (exact ends) are not worth a read round each, which
    // far from the source costs more than the SCAN: their keys wait for the next ones', up to
    // a batch. The batch's cursor is the last SCAN's, so a checkpoint covers them all.
    const size_t batch_keys = static_cast<size_t>(std::max(1, options_.batch_keys));
    if (!last && scan_count_ < options_.batch_keys && batch.keys.size() < batch_keys) {
      AppendScan(next);
      FERRY_RETURN_IF_ERROR(source_.Flush());
      continue;
    }
    if (!Admit(batch.keys.size())) return absl::OkStatus();
    FERRY_RETURN_IF_ERROR(ReadDumps(batch, /*then_scan=*/!last, next));
    if (!Paid(batch) || !queue_.Push(std::exchange(batch, Batch())) || last) {
      return absl::OkStatus();
    }
  }
}

absl::Status ShardReader::ReadDumps(Batch& batch, bool then_scan, uint64_t next_cursor) {
  // Where the keys were read (also for rescan passes, which copy the keys that differ).
  batch.source = &source_.endpoint();
  batch.replica = replica_;
  if (options_.verify.has_value()) return ReadKeysOnly(batch, then_scan, next_cursor);
  batch.source_caps = &path_.source;
  batch.clock = clock_;
  // MGET needs every key in one slot on a cluster node; only strings are worth it.
  const bool by_mget = !spec_.cluster() && (spec_.type.empty() || spec_.type == "string");
  const bool sizes = path_.big_key_bytes != wire::kBigKeysOff;
  if (!batch.keys.empty() && (sizes || typed_ || filter_types_)) {
    FERRY_RETURN_IF_ERROR(Probe(batch, then_scan, next_cursor, by_mget && sizes));
    then_scan = false;  // Sent with the probe.
  }
  if (!batch.keys.empty() && by_mget) {
    FERRY_RETURN_IF_ERROR(ReadWithMget(batch, then_scan, next_cursor));
    // What MGET found tells the next probe which command sizes this shard's keys best.
    size_t strings = 0;
    for (const auto& value : batch.string_value) strings += value.has_value() ? 1 : 0;
    mostly_strings_ = strings * 10 >= batch.keys.size() * 9;
  } else {
    FERRY_RETURN_IF_ERROR(ReadPerKey(batch, then_scan, next_cursor));
  }
  if (!typed_) DeferUnreadablePayloads(batch);
  return absl::OkStatus();
}

absl::Status ShardReader::ReadKeysOnly(Batch& batch, bool then_scan, uint64_t next_cursor) {
  if (!batch.keys.empty() && filter_types_) {
    return Probe(batch, then_scan, next_cursor, /*strings_by_mget=*/false);
  }
  if (!then_scan) return absl::OkStatus();
  AppendScan(next_cursor);
  return source_.Flush();
}

void ShardReader::AppendValueRead(const Batch& batch, size_t i) {
  if (!typed_) {
    source_.Append({"DUMP", batch.keys[i]});
  } else if (ReadableWhole(batch.type[i], path_.source)) {
    AppendWholeRead(source_, batch.type[i], batch.keys[i]);
  } else {
    // Type unknown (the probe met a redirect) or changed: TYPE keeps the replies in step; the
    // key is copied on its own (TakeValue).
    source_.Append({"TYPE", batch.keys[i]});
  }
}

absl::StatusOr<bool> ShardReader::TakeValue(Batch& batch, size_t i, Reply value) {
  if (value.is_error()) {
    absl::Status status = ReplyStatus("source", typed_ ? "read" : "DUMP", value);
    if (redis::Classify(status) != redis::ErrorClass::kPerKey) return status;
    // WRONGTYPE: the key's type changed since the probe. XINFO STREAM also answers an error
    // for a stream gone since: ValueCopier tells which.
    if (typed_ && (absl::StartsWith(value.str(), "WRONGTYPE") || batch.type[i] == "stream")) {
      return true;
    }
  } else if (typed_ && !ReadableWhole(batch.type[i], path_.source)) {
    return true;
  }
  batch.bytes += ReplyBytes(value) + batch.keys[i].size();
  batch.dump[i] = std::move(value);
  return false;
}

void ShardReader::DeferChanged(Batch& batch, const std::vector<bool>& changed) {
  bool any = false;
  for (size_t i = 0; i < changed.size(); ++i) {
    if (!changed[i]) continue;
    batch.individual.emplace_back(batch.keys[i]);
    any = true;
  }
  if (any) EraseKeys(batch, changed);
}

void ShardReader::DeferUnreadablePayloads(Batch& batch) {
  if (path_.target == nullptr) return;
  std::vector<bool> unreadable(batch.keys.size(), false);
  for (size_t i = 0; i < batch.dump.size(); ++i) {
    const ReplyView dump = batch.dump[i];
    if (dump.is_error() || dump.is_nil() || dump.str().empty()) continue;
    const std::optional<int> version = redis::PayloadVersion(dump.str());
    if (!version.has_value() || path_.target->Reads(*version)) continue;
    unreadable[i] = true;
    if (!typed_) {
      FERRY_LOG(Info) << "source " << source_.endpoint().Address()
                      << " writes DUMP payload version " << *version << ", which the target ("
                      << path_.target->caps.Describe() << ", payload version "
                      << path_.target->payload_version << ") cannot read: shard "
                      << spec_.shard_index << " copies its keys type by type";
    }
    typed_ = true;
  }
  DeferChanged(batch, unreadable);
}

absl::Status ShardReader::ReadPerKey(Batch& batch, bool then_scan, uint64_t next_cursor) {
  for (size_t i = 0; i < batch.keys.size(); ++i) {
    AppendTtl(batch.keys[i]);
    AppendValueRead(batch, i);
  }
  if (then_scan) AppendScan(next_cursor);
  const absl::Time sent = absl::Now();
  FERRY_RETURN_IF_ERROR(source_.Flush());
  const size_t n = batch.keys.size();
  batch.expiry.assign(n, kVanished);
  batch.dump.resize(n);
  std::vector<bool> migrating(n, false);
  std::vector<bool> changed(n, false);
  bool moved = false;
  for (size_t i = 0; i < n; ++i) {
    FERRY_ASSIGN_OR_RETURN(Reply pttl, source_.ReadReply());
    FERRY_ASSIGN_OR_RETURN(Reply value, source_.ReadReply());
    for (const Reply* r : {&pttl, &value}) {
      if (!r->is_error()) continue;
      const redis::ReplyErrorKind kind = redis::Kind(r->str());
      // ASK: the key already went to the slot's importing node; MOVED: the slot did, or the
      // node is no longer a primary (checked below). Read there later.
      if (kind == redis::ReplyErrorKind::kAsk || kind == redis::ReplyErrorKind::kMoved) {
        migrating[i] = true;
        moved = moved || kind == redis::ReplyErrorKind::kMoved;
      }
    }
    if (migrating[i]) {
      batch.moved_slots.push_back(redis::KeySlot(batch.keys[i]));
      continue;
    }
    if (pttl.is_error()) {
      absl::Status status = ReplyStatus("source", "PTTL", pttl);
      if (redis::Classify(status) != redis::ErrorClass::kPerKey) return status;
    } else {
      batch.expiry[i] = LocalExpiry(pttl.integer(), clock_, sent);
    }
    // A per-key read error is a vanished-like key for the writer: the value slot keeps the
    // error reply so the writer records it.
    FERRY_ASSIGN_OR_RETURN(changed[i], TakeValue(batch, i, std::move(value)));
  }
  EraseKeys(batch, migrating);
  std::vector<bool> kept_changed;
  for (size_t i = 0; i < n; ++i) {
    if (!migrating[i]) kept_changed.push_back(changed[i]);
  }
  DeferChanged(batch, kept_changed);
  FERRY_RETURN_IF_ERROR(RereadSlowTtls(batch, sent, then_scan));
  return moved ? CheckStillServing(then_scan) : absl::OkStatus();
}

absl::Status ShardReader::CheckStillServing(bool scan_pending) {
  if (replica_) return absl::OkStatus();  // MOVED from the replica read: its primary lost the slot.
  if (scan_pending && !prefetched_.has_value()) {
    FERRY_ASSIGN_OR_RETURN(prefetched_, source_.ReadReply());
  }
  absl::StatusOr<Reply> role = source_.Command({"ROLE"});
  if (role.ok() && role->size() > 0 && role->element(0).str() == "master") {
    return absl::OkStatus();
  }
  return absl::UnavailableError(
      absl::StrCat("source topology changed: ", source_.endpoint().Address(),
                   " answered MOVED and is no longer a primary"));
}

bool ShardReader::Admit(size_t keys) {
  return limiter_ == nullptr || keys == 0 || limiter_->Acquire(static_cast<double>(keys), cancel_);
}

bool ShardReader::Paid(const Batch& batch) {
  RateLimiter* bytes = options_.byte_limiter;
  return bytes == nullptr || batch.bytes == 0 ||
         bytes->Acquire(static_cast<double>(batch.bytes), cancel_);
}

bool ShardReader::Stopping() { return (cancel_ != nullptr && cancel_->load()) || queue_.stopped(); }

}  // namespace ferry::agent
