#include "agent/shard_writer.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/redis/errors.h"

namespace ferry::agent {
namespace {

// DUMP payloads end with a 2-byte RDB version and an 8-byte CRC64; servers of different
// versions frame the same value differently there.
constexpr size_t kDumpTrailer = 10;
// RDB object types whose payload is a hash table's iteration order: a key restored from a
// payload dumps its elements in another order (bucket chains come out reversed).
constexpr unsigned char kRdbTypeSet = 2;
constexpr unsigned char kRdbTypeHash = 4;

// Reads the RDB encoding of a hash-table set or hash (a length, then strings: raw, integer or
// LZF-compressed). Enough to compare two payloads by content; nullopt for anything it cannot
// read, which then counts as different.
class RdbReader {
 public:
  explicit RdbReader(absl::string_view in) : in_(in) {}

  bool done() const { return in_.empty(); }

  // A length; `encoded` says that the low 6 bits of an 11xxxxxx byte name a string encoding.
  std::optional<uint64_t> Length(bool* encoded = nullptr) {
    if (in_.empty()) return std::nullopt;
    const unsigned char first = Byte();
    if (encoded != nullptr) *encoded = (first >> 6) == 3;
    switch (first >> 6) {
      case 0:
      case 3:
        return first & 0x3f;
      case 1:
        if (in_.empty()) return std::nullopt;
        return (uint64_t{first & 0x3fu} << 8) | Byte();
      default:
        if (first != 0x80 && first != 0x81) return std::nullopt;
        return BigEndian(first == 0x80 ? 4 : 8);
    }
  }

  std::optional<std::string> String() {
    bool encoded = false;
    const std::optional<uint64_t> len = Length(&encoded);
    if (!len.has_value()) return std::nullopt;
    if (!encoded) return Take(*len);
    if (*len <= 2) {  // An integer of 1, 2 or 4 bytes, little-endian, signed.
      const size_t bytes = size_t{1} << *len;
      if (in_.size() < bytes) return std::nullopt;
      uint64_t v = 0;
      for (size_t b = 0; b < bytes; ++b) v |= uint64_t{Byte()} << (8 * b);
      const int shift = 64 - 8 * static_cast<int>(bytes);
      return std::to_string(static_cast<int64_t>(v << shift) >> shift);
    }
    if (*len != 3) return std::nullopt;
    const std::optional<uint64_t> compressed = Length();
    const std::optional<uint64_t> plain = Length();
    if (!compressed.has_value() || !plain.has_value()) return std::nullopt;
    const std::optional<std::string> data = Take(*compressed);
    if (!data.has_value()) return std::nullopt;
    return LzfDecompress(*data, *plain);
  }

 private:
  unsigned char Byte() {
    const unsigned char c = static_cast<unsigned char>(in_.front());
    in_.remove_prefix(1);
    return c;
  }
  std::optional<uint64_t> BigEndian(size_t bytes) {
    if (in_.size() < bytes) return std::nullopt;
    uint64_t v = 0;
    for (size_t b = 0; b < bytes; ++b) v = (v << 8) | Byte();
    return v;
  }
  std::optional<std::string> Take(uint64_t n) {
    if (in_.size() < n) return std::nullopt;
    std::string out(in_.substr(0, n));
    in_.remove_prefix(n);
    return out;
  }
  // liblzf's format, as Redis writes it: literal runs and back references.
  static std::optional<std::string> LzfDecompress(absl::string_view in, uint64_t plain) {
    std::string out;
    out.reserve(plain);
    size_t ip = 0;
    while (ip < in.size()) {
      const unsigned ctrl = static_cast<unsigned char>(in[ip++]);
      if (ctrl < 32) {
        const size_t run = ctrl + 1;
        if (ip + run > in.size()) return std::nullopt;
        out.append(in.data() + ip, run);
        ip += run;
        continue;
      }
      size_t len = ctrl >> 5;
      if (len == 7) {
        if (ip >= in.size()) return std::nullopt;
        len += static_cast<unsigned char>(in[ip++]);
      }
      if (ip >= in.size()) return std::nullopt;
      const size_t back = ((ctrl & 0x1fu) << 8) + static_cast<unsigned char>(in[ip++]) + 1;
      if (back > out.size()) return std::nullopt;
      // Byte by byte: a reference may overlap what it produces.
      for (size_t k = 0, from = out.size() - back; k < len + 2; ++k) out.push_back(out[from + k]);
    }
    if (out.size() != plain) return std::nullopt;
    return out;
  }

  absl::string_view in_;
};

// The elements of a hash-table set (members) or hash (field + value joined by their lengths),
// sorted; nullopt when `payload` is neither or cannot be read.
std::optional<std::vector<std::string>> SortedElements(absl::string_view payload) {
  if (payload.size() < kDumpTrailer + 1) return std::nullopt;
  const unsigned char type = static_cast<unsigned char>(payload.front());
  if (type != kRdbTypeSet && type != kRdbTypeHash) return std::nullopt;
  RdbReader reader(payload.substr(1, payload.size() - 1 - kDumpTrailer));
  const std::optional<uint64_t> len = reader.Length();
  if (!len.has_value()) return std::nullopt;
  std::vector<std::string> elements;
  for (uint64_t e = 0; e < *len; ++e) {
    std::optional<std::string> member = reader.String();
    if (!member.has_value()) return std::nullopt;
    if (type == kRdbTypeHash) {
      std::optional<std::string> value = reader.String();
      if (!value.has_value()) return std::nullopt;
      *member = absl::StrCat(member->size(), ":", *member, *value);
    }
    elements.push_back(*std::move(member));
  }
  if (!reader.done()) return std::nullopt;
  std::sort(elements.begin(), elements.end());
  return elements;
}

// Whether two DUMP payloads hold the same value. Byte-equal bodies are the same value whatever
// the trailers; hash-table sets and hashes are compared by content. Any other difference counts
// as a different value, even where only the encoding differs (a target with other
// *-max-listpack-* settings converts on RESTORE): a false conflict, never a silent overwrite.
bool SameDumpValue(absl::string_view source, absl::string_view target) {
  if (source == target) return true;
  if (source.size() < kDumpTrailer || target.size() < kDumpTrailer) return false;
  if (source.substr(0, source.size() - kDumpTrailer) ==
      target.substr(0, target.size() - kDumpTrailer)) {
    return true;
  }
  std::optional<std::vector<std::string>> a = SortedElements(source);
  if (!a.has_value() || source.front() != target.front()) return false;
  std::optional<std::vector<std::string>> b = SortedElements(target);
  return b.has_value() && *a == *b;
}

}  // namespace

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
    if (absl::Status status = ReadReplies(batch, delta); !status.ok()) {
      // A fatal error (OOM, NOPERM, a target that lost data) stops the shard here: what this
      // batch did write is counted, so the summary agrees with the target. The cursor stays
      // before the batch: a resume writes it again.
      if (redis::Classify(status) == redis::ErrorClass::kFatal && delta.copied > 0) {
        checkpoint_.counters.copied += delta.copied;
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
  if (batch.expiry[i] == kVanished || dump.is_nil()) {
    ++delta.vanished;
    return;
  }
  bool absolute = false;
  int64_t ttl = 0;  // RESTORE's "no expiry".
  if (batch.expiry[i] >= 0) {
    // Never extend a TTL (expiry.h).
    const std::optional<int64_t> restore_ttl = expiry_.RestoreTtl(batch.expiry[i]);
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
  if (batch.expiry[i] == kVanished) {
    ++delta.vanished;
    return;
  }
  absl::string_view argv[6] = {"SET", key, value};
  size_t argc = 3;
  if (batch.expiry[i] >= 0) {
    // Never extend a TTL (expiry.h).
    std::optional<std::pair<absl::string_view, int64_t>> expiry =
        expiry_.SetExpiry(batch.expiry[i]);
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
  conflicts_.clear();
  for (size_t n = 0; n < sent_.size(); ++n) {
    const auto [i, sent] = sent_[n];
    const redis::Reply& reply = replies[n];
    if (sent == Sent::kSet && reply.is_nil()) {
      conflicts_.push_back(n);  // SET ... NX found the key on the target.
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

absl::Status ShardWriter::CheckConflicts(const Batch& batch, ShardCounters& delta) {
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
        ++delta.expired;
      } else {
        Conflict(batch, i, delta);
      }
    } else if (sent == Sent::kSet ? reply.str() == *batch.string_value[i]
                                  : SameDumpValue(batch.dump[i].str(), reply.str())) {
      ++delta.copied;
    } else {
      Conflict(batch, i, delta);
    }
  }
  return absl::OkStatus();
}

void ShardWriter::Conflict(const Batch& batch, size_t i, ShardCounters& delta) {
  if (options_.on_conflict == OnConflict::kSkip) {
    ++delta.skipped;
  } else {
    Fail(batch.keys[i], "exists on the target (--on-conflict fail)", delta);
  }
}

void ShardWriter::Fail(absl::string_view key, std::string reason, ShardCounters& delta) {
  ++delta.failed;
  if (callbacks_.on_failed_key) callbacks_.on_failed_key(std::string(key), reason);
}

}  // namespace ferry::agent
