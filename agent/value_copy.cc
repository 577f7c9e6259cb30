#include "agent/value_copy.h"

#include <algorithm>
#include <memory>
#include <random>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/dump_compare.h"
#include "agent/shard_reader.h"
#include "agent/stream_copy.h"
#include "common/base/status_macros.h"
#include "common/redis/errors.h"
#include "common/redis/slot.h"

namespace ferry::agent {
namespace {

using redis::Reply;
using redis::ReplyView;

absl::string_view RebuildCommand(absl::string_view type) {
  if (type == "hash") return "HSET";
  if (type == "set") return "SADD";
  if (type == "zset") return "ZADD";
  return "RPUSH";
}

// How many reply elements make one element of `type`: a field and its value, a member and its
// score.
size_t Stride(absl::string_view type) { return type == "hash" || type == "zset" ? 2 : 1; }

uint64_t ElementBytes(ReplyView elements) {
  uint64_t bytes = 0;
  for (size_t i = 0; i < elements.size(); ++i) bytes += elements.element(i).str().size();
  return bytes;
}

// What a look at a key found: a copy is good when the shape did not change while it was read.
// A write that keeps type, encoding and length (HSET of an existing field) goes unseen.
struct Shape {
  std::string type;  // "none": gone.
  std::string encoding;
  int64_t length = 0;
  StreamInfo stream;  // Streams only.

  bool Same(const Shape& other) const {
    return type == other.type && encoding == other.encoding && length == other.length &&
           stream.last_id == other.stream.last_id;
  }
};

// Copies one key into its temporary key, again while it changes, then renames it over the key.
class OneKey {
 public:
  explicit OneKey(KeyPages& pages) : pages_(pages) {}

  absl::StatusOr<KeyCopy> Run();
  // Best effort after a status: the error that ended the copy is what matters.
  void Abandon() { RemoveTemp().IgnoreError(); }

 private:
  enum class Pass { kCopied, kChanged, kVanished, kRefused };

  absl::StatusOr<Pass> CopyOnce();
  absl::StatusOr<Shape> ReadShape(absl::string_view type);
  absl::Status CopyPages(const Shape& shape);
  absl::Status CopyString(int64_t length);
  absl::Status CopyScanned(absl::string_view type, absl::string_view scan);
  absl::Status CopyList(int64_t length);
  absl::Status CopyFieldTtls(ReplyView elements);
  absl::StatusOr<KeyCopy> Finish();
  absl::StatusOr<int64_t> ReadExpiry();
  absl::StatusOr<KeyCopy> Expired();
  absl::StatusOr<KeyCopy> Conflict();
  absl::StatusOr<bool> SameOnTarget();
  absl::Status RemoveTemp();
  // DUMPs of two streams built at different times differ in their delivery times.
  absl::StatusOr<bool> SameStream();

  KeyCopy Result(KeyCopy::Outcome outcome, std::string reason = "") const {
    return KeyCopy{outcome, std::move(reason), pages_.bytes};
  }
  absl::string_view Unlink() const { return pages_.target_caps.unlink() ? "UNLINK" : "DEL"; }
  bool replace() const { return pages_.options.on_conflict == OnConflict::kReplace; }

  KeyPages& pages_;
  std::string type_;  // The key's type, as the last pass found it.
};

absl::StatusOr<KeyCopy> OneKey::Run() {
  const int attempts = std::max(pages_.options.max_attempts, 1);
  for (int attempt = 0; attempt < attempts; ++attempt) {
    pages_.bytes = 0;
    FERRY_ASSIGN_OR_RETURN(Pass pass, CopyOnce());
    if (pass != Pass::kCopied) FERRY_RETURN_IF_ERROR(RemoveTemp());
    switch (pass) {
      case Pass::kChanged:
        continue;
      case Pass::kVanished:
        return Result(KeyCopy::Outcome::kVanished);
      case Pass::kRefused:
        return Result(KeyCopy::Outcome::kFailed, *pages_.refusal);
      case Pass::kCopied:
        break;
    }
    absl::StatusOr<KeyCopy> finished = Finish();
    if (!finished.ok() && redis::Classify(finished.status()) == redis::ErrorClass::kPerKey) {
      Abandon();
      return Result(KeyCopy::Outcome::kFailed, std::string(finished.status().message()));
    }
    return finished;
  }
  return Result(KeyCopy::Outcome::kFailed,
                absl::StrCat("kept changing while it was copied (", attempts, " attempts)"));
}

// The shape before, the pages, the shape after. A per-key error of a page (WRONGTYPE when the
// key was replaced meanwhile) counts as a change when the shape changed, else as the reason the
// key cannot be copied.
absl::StatusOr<OneKey::Pass> OneKey::CopyOnce() {
  FERRY_ASSIGN_OR_RETURN(Reply type, pages_.Read({"TYPE", pages_.key}));
  if (type.str() == "none") return Pass::kVanished;
  if ((pages_.refusal = CannotHold(type.str(), pages_.target_caps)).has_value()) {
    return Pass::kRefused;
  }
  FERRY_ASSIGN_OR_RETURN(Shape before, ReadShape(type.str()));
  if (before.type == "none") return Pass::kVanished;
  if (before.type != type.str()) return Pass::kChanged;
  type_ = before.type;
  pages_.again = false;
  const absl::Status copied = CopyPages(before);
  if (!copied.ok() && redis::Classify(copied) != redis::ErrorClass::kPerKey) return copied;
  if (pages_.refusal.has_value()) return Pass::kRefused;
  if (pages_.again) return Pass::kChanged;
  FERRY_ASSIGN_OR_RETURN(Shape after, ReadShape(before.type));
  if (after.type == "none") return Pass::kVanished;
  if (!before.Same(after)) return Pass::kChanged;
  if (copied.ok()) return Pass::kCopied;
  pages_.refusal = std::string(copied.message());
  return Pass::kRefused;
}

// One pipeline: TYPE, OBJECT ENCODING, the length for `type` (and XINFO STREAM). Replies to a
// key of another type than `type` are ignored: the type tells the change.
absl::StatusOr<Shape> OneKey::ReadShape(absl::string_view type) {
  redis::Connection& source = pages_.source;
  source.Append({"TYPE", pages_.key});
  source.Append({"OBJECT", "ENCODING", pages_.key});
  source.Append({LengthCommand(type), pages_.key});
  if (type == "stream") source.Append({"XINFO", "STREAM", pages_.key});
  FERRY_RETURN_IF_ERROR(source.Flush());
  std::vector<Reply> replies;
  while (source.pending() > 0) {
    FERRY_ASSIGN_OR_RETURN(Reply reply, source.ReadReply());
    replies.push_back(std::move(reply));
  }
  if (replies[0].is_error()) return ReplyStatus("source", "TYPE", replies[0]);
  Shape shape;
  shape.type = std::string(replies[0].str());
  if (shape.type != type) return shape;
  // OBJECT may be refused (renamed, ACL): the other parts still tell most changes.
  if (!replies[1].is_error()) shape.encoding = std::string(replies[1].str());
  if (replies[2].is_error()) return ReplyStatus("source", LengthCommand(type), replies[2]);
  shape.length = replies[2].integer();
  if (type != "stream") return shape;
  if (replies[3].is_error()) return ReplyStatus("source", "XINFO STREAM", replies[3]);
  shape.stream = ParseStreamInfo(replies[3]);
  return shape;
}

absl::Status OneKey::CopyPages(const Shape& shape) {
  if (shape.type == "string") return CopyString(shape.length);
  if (shape.type == "hash") return CopyScanned(shape.type, "HSCAN");
  if (shape.type == "set") return CopyScanned(shape.type, "SSCAN");
  if (shape.type == "zset") return CopyScanned(shape.type, "ZSCAN");
  if (shape.type == "list") return CopyList(shape.length);
  return CopyStream(pages_, shape.stream);
}

// GETRANGE windows, SET then APPEND. A string that shrank meanwhile ends early; the shape after
// tells.
absl::Status OneKey::CopyString(int64_t length) {
  if (length == 0) {
    pages_.target.Add({"SET", pages_.tmp, ""});
    return pages_.Write("SET").status();
  }
  const int64_t window = static_cast<int64_t>(std::max<uint64_t>(pages_.options.chunk_bytes, 1));
  for (int64_t offset = 0; offset < length;) {
    const std::string start = absl::StrCat(offset);
    const std::string end = absl::StrCat(std::min(offset + window, length) - 1);
    FERRY_ASSIGN_OR_RETURN(Reply piece, pages_.Read({"GETRANGE", pages_.key, start, end}));
    if (piece.str().empty()) break;
    pages_.target.Add({offset == 0 ? "SET" : "APPEND", pages_.tmp, piece.str()});
    FERRY_RETURN_IF_ERROR(pages_.Write(offset == 0 ? "SET" : "APPEND").status());
    offset += static_cast<int64_t>(piece.str().size());
    pages_.bytes += piece.str().size();
  }
  return absl::OkStatus();
}

// HSCAN/SSCAN/ZSCAN pages, each written before the next is read. SCAN may return an element
// twice; writing it twice is harmless.
absl::Status OneKey::CopyScanned(absl::string_view type, absl::string_view scan) {
  std::string cursor = "0";
  int count = pages_.options.page_elements;
  do {
    const std::string count_text = absl::StrCat(count);
    FERRY_ASSIGN_OR_RETURN(Reply page,
                           pages_.Read({scan, pages_.key, cursor, "COUNT", count_text}));
    if (page.size() != 2) return absl::InternalError(absl::StrCat("source ", scan, ": bad reply"));
    cursor = std::string(page.element(0).str());
    const ReplyView elements = page.element(1);
    const uint64_t page_bytes = ElementBytes(elements);
    const size_t queued = AppendRebuild(pages_.target, type, pages_.tmp, elements,
                                        {pages_.options.max_per_command}, pages_.arena);
    if (type == "hash" && pages_.source_caps.hash_field_ttl()) {
      FERRY_RETURN_IF_ERROR(CopyFieldTtls(elements));
    }
    if (queued > 0) FERRY_RETURN_IF_ERROR(pages_.Write(RebuildCommand(type)).status());
    if (pages_.refusal.has_value()) return absl::OkStatus();
    pages_.bytes += page_bytes;
    count = pages_.NextCount(elements.size() / Stride(type), page_bytes);
  } while (cursor != "0");
  return absl::OkStatus();
}

// LRANGE windows, RPUSH.
absl::Status OneKey::CopyList(int64_t length) {
  int count = pages_.options.page_elements;
  for (int64_t start = 0; start < length;) {
    const std::string first = absl::StrCat(start);
    const std::string last = absl::StrCat(start + count - 1);
    FERRY_ASSIGN_OR_RETURN(Reply page, pages_.Read({"LRANGE", pages_.key, first, last}));
    if (page.size() == 0) break;
    AppendRebuild(pages_.target, "list", pages_.tmp, page, {pages_.options.max_per_command},
                  pages_.arena);
    FERRY_RETURN_IF_ERROR(pages_.Write("RPUSH").status());
    const uint64_t page_bytes = ElementBytes(page);
    pages_.bytes += page_bytes;
    start += static_cast<int64_t>(page.size());
    count = pages_.NextCount(page.size(), page_bytes);
  }
  return absl::OkStatus();
}

// Hash field TTLs (Redis 7.4, Valkey 9.0) of one HSCAN page, queued for `tmp` after the page's
// HSETs, in the same pipeline.
absl::Status OneKey::CopyFieldTtls(ReplyView elements) {
  if (elements.size() == 0) return absl::OkStatus();
  const std::string fields = absl::StrCat(elements.size() / 2);
  std::vector<absl::string_view> argv = {pages_.clock ? "HPEXPIRETIME" : "HPTTL", pages_.key,
                                         "FIELDS", fields};
  for (size_t i = 0; i + 1 < elements.size(); i += 2) argv.push_back(elements.element(i).str());
  const absl::Time sent = absl::Now();
  FERRY_ASSIGN_OR_RETURN(Reply times, pages_.Read(argv));
  for (size_t i = 0; i < times.size(); ++i) {
    const int64_t expiry = LocalExpiry(times.element(i).integer(), pages_.clock, sent);
    if (expiry < 0) continue;  // No TTL, or the field is gone.
    if (!pages_.target_caps.hash_field_ttl()) {
      if (pages_.options.drop_field_ttls) continue;
      pages_.refusal = absl::StrCat("a hash with field TTLs, and the target (",
                                    pages_.target_caps.Describe(), ") has no field TTLs");
      return absl::OkStatus();
    }
    const absl::string_view field = elements.element(2 * i).str();
    const std::optional<int64_t> ttl = pages_.expiry.RestoreTtl(expiry);
    if (!ttl.has_value()) {
      pages_.target.Add({"HDEL", pages_.tmp, field});
      continue;
    }
    pages_.arena.push_back(absl::StrCat(*ttl));
    pages_.target.Add({pages_.expiry.absolute() ? "HPEXPIREAT" : "HPEXPIRE", pages_.tmp,
                       pages_.arena.back(), "FIELDS", "1", field});
  }
  return absl::OkStatus();
}

// The TTL, read after the pages so a TTL shortened meanwhile is honoured, then the RENAME.
absl::StatusOr<KeyCopy> OneKey::Finish() {
  FERRY_ASSIGN_OR_RETURN(int64_t expiry, ReadExpiry());
  if (expiry == kVanished) {
    FERRY_RETURN_IF_ERROR(RemoveTemp());
    return Result(KeyCopy::Outcome::kVanished);
  }
  std::optional<int64_t> ttl;
  if (expiry != kNoExpiry) {
    ttl = pages_.expiry.RestoreTtl(expiry);  // Never extended (expiry.h).
    if (!ttl.has_value()) return Expired();
  }
  AppendFinish(pages_.target, pages_.tmp, pages_.key, ttl, pages_.expiry.absolute(), replace(),
               /*unlink_first=*/true, pages_.arena);
  FERRY_ASSIGN_OR_RETURN(std::vector<Reply> replies, pages_.Write("RENAME"));
  if (replace() || replies.back().integer() == 1) return Result(KeyCopy::Outcome::kCopied);
  return Conflict();
}

absl::StatusOr<int64_t> OneKey::ReadExpiry() {
  const absl::Time sent = absl::Now();
  FERRY_ASSIGN_OR_RETURN(
      Reply reply, pages_.Read({pages_.clock.has_value() ? "PEXPIRETIME" : "PTTL", pages_.key}));
  return LocalExpiry(reply.integer(), pages_.clock, sent);
}

absl::StatusOr<KeyCopy> OneKey::Expired() {
  pages_.target.Add({Unlink(), pages_.tmp});
  if (replace()) pages_.target.Add({Unlink(), pages_.key});
  FERRY_RETURN_IF_ERROR(pages_.Write(Unlink()).status());
  return Result(KeyCopy::Outcome::kExpired);
}

// RENAMENX found the key on the target: no conflict when it already holds this value.
absl::StatusOr<KeyCopy> OneKey::Conflict() {
  FERRY_ASSIGN_OR_RETURN(bool same, SameOnTarget());
  FERRY_RETURN_IF_ERROR(RemoveTemp());
  if (same) return Result(KeyCopy::Outcome::kCopied);
  if (pages_.options.on_conflict == OnConflict::kSkip) {
    return Result(KeyCopy::Outcome::kSkipped, "exists on the target (the conflict policy is skip)");
  }
  return Result(KeyCopy::Outcome::kFailed, "exists on the target (the conflict policy is fail)");
}

// Compares DUMPs of the temporary key and the key on the target when both are small (a DUMP is
// one command over the whole value); a big or unreadable one counts as different.
absl::StatusOr<bool> OneKey::SameOnTarget() {
  const uint64_t small = pages_.options.chunk_bytes;
  if (pages_.bytes >= small || !pages_.target_caps.memory_usage()) {
    return false;
  }
  pages_.target.Add({"MEMORY", "USAGE", pages_.key});
  FERRY_ASSIGN_OR_RETURN(std::vector<Reply> usage, pages_.target.Execute());
  if (!usage[0].is_integer() || static_cast<uint64_t>(usage[0].integer()) >= small) return false;
  if (type_ == "stream") return SameStream();
  pages_.target.Add({"DUMP", pages_.tmp});
  pages_.target.Add({"DUMP", pages_.key});
  FERRY_ASSIGN_OR_RETURN(std::vector<Reply> dumps, pages_.target.Execute());
  if (dumps[0].is_error() || dumps[1].is_error() || dumps[1].is_nil()) return false;
  return SameDumpValue(dumps[0].str(), dumps[1].str());
}

absl::StatusOr<bool> OneKey::SameStream() {
  const int limit = pages_.options.page_elements;
  FERRY_ASSIGN_OR_RETURN(std::optional<std::string> copied,
                         StreamFingerprint(pages_.target, pages_.tmp, limit));
  FERRY_ASSIGN_OR_RETURN(std::optional<std::string> existing,
                         StreamFingerprint(pages_.target, pages_.key, limit));
  return copied.has_value() && existing.has_value() && *copied == *existing;
}

absl::Status OneKey::RemoveTemp() {
  pages_.target.Add({Unlink(), pages_.tmp});
  return pages_.Write(Unlink()).status();
}

}  // namespace

absl::string_view LengthCommand(absl::string_view type) {
  if (type == "string") return "STRLEN";
  if (type == "hash") return "HLEN";
  if (type == "set") return "SCARD";
  if (type == "zset") return "ZCARD";
  if (type == "list") return "LLEN";
  if (type == "stream") return "XLEN";
  return "";
}

TempKeys::TempKeys() {
  std::random_device seed;
  const uint64_t id = (static_cast<uint64_t>(seed()) << 32) ^ seed();
  id_ = absl::StrCat(absl::Hex(id));
}

std::string TempKeys::For(absl::string_view key) {
  return absl::StrCat("ferry:tmp:{", redis::TagForSlot(redis::KeySlot(key)), "}:", id_, ":",
                      next_++);
}

std::optional<std::string> CannotHold(absl::string_view type,
                                      const redis::Capabilities& target_caps) {
  if (LengthCommand(type).empty()) {
    return absl::StrCat("a value of the module type '", type,
                        "', which only DUMP/RESTORE can copy and the target cannot RESTORE");
  }
  if (type == "stream" && !target_caps.streams()) {
    return absl::StrCat("a stream, and the target (", target_caps.Describe(), ") has no streams");
  }
  return std::nullopt;
}

bool ReadableWhole(absl::string_view type, const redis::Capabilities& source_caps) {
  if (type == "stream") return source_caps.xinfo_stream_full();
  return type == "string" || type == "hash" || type == "list" || type == "set" || type == "zset";
}

void AppendWholeRead(redis::Connection& source, absl::string_view type, absl::string_view key) {
  if (type == "string") {
    source.Append({"GET", key});
  } else if (type == "hash") {
    source.Append({"HGETALL", key});
  } else if (type == "list") {
    source.Append({"LRANGE", key, "0", "-1"});
  } else if (type == "set") {
    source.Append({"SMEMBERS", key});
  } else if (type == "stream") {
    // COUNT 0: every entry and every pending entry (the default is 10).
    source.Append({"XINFO", "STREAM", key, "FULL", "COUNT", "0"});
  } else {
    source.Append({"ZRANGE", key, "0", "-1", "WITHSCORES"});
  }
}

size_t AppendRebuild(redis::Router& target, absl::string_view type, absl::string_view dest,
                     ReplyView elements, const RebuildOptions& options, ArgArena& arena) {
  if (type == "string") {
    target.Add({"SET", dest, elements.str()});
    return 1;
  }
  if (type == "stream") return AppendStreamRebuild(target, dest, elements, options, arena);
  const size_t stride = Stride(type);
  const size_t per_command = stride * static_cast<size_t>(std::max(options.max_per_command, 1));
  size_t commands = 0;
  std::vector<absl::string_view> argv;
  for (size_t first = 0; first + stride <= elements.size(); first += per_command) {
    argv = {RebuildCommand(type), dest};
    const size_t end = std::min(first + per_command, elements.size() / stride * stride);
    for (size_t i = first; i < end; i += stride) {
      if (type == "zset") {
        // ZRANGE and ZSCAN give the member, then its score; ZADD takes the score first.
        argv.push_back(elements.element(i + 1).str());
        argv.push_back(elements.element(i).str());
        continue;
      }
      for (size_t j = 0; j < stride; ++j) argv.push_back(elements.element(i + j).str());
    }
    target.Add(argv);
    ++commands;
  }
  return commands;
}

size_t AppendFinish(redis::Router& target, absl::string_view tmp, absl::string_view key,
                    std::optional<int64_t> ttl, bool absolute, bool replace, bool unlink_first,
                    ArgArena& arena) {
  size_t commands = 0;
  if (ttl.has_value()) {
    arena.push_back(absl::StrCat(*ttl));
    target.Add({absolute ? "PEXPIREAT" : "PEXPIRE", tmp, arena.back()});
    ++commands;
  }
  // Only before RENAME: RENAMENX must find the key to report the conflict.
  if (unlink_first && replace) {
    target.Add({"UNLINK", key});
    ++commands;
  }
  target.Add({replace ? "RENAME" : "RENAMENX", tmp, key});
  return commands + 1;
}

ValueCopier::ValueCopier(redis::Connection& source, const redis::Capabilities& source_caps,
                         std::optional<SourceClock> clock, redis::Router& target,
                         const redis::Capabilities& target_caps, const ExpiryMapper& expiry,
                         TempKeys& temp_keys, ValueCopyOptions options)
    : source_(source),
      source_caps_(source_caps),
      clock_(clock),
      target_(target),
      target_caps_(target_caps),
      expiry_(expiry),
      temp_keys_(temp_keys),
      options_(options) {}

absl::StatusOr<KeyCopy> ValueCopier::Copy(absl::string_view key) {
  const std::string tmp = temp_keys_.For(key);
  KeyPages pages{
      source_, source_caps_, clock_,      target_,      target_caps_, expiry_, options_,
      key,     tmp,          /*bytes=*/0, std::nullopt, {},           {},      /*again=*/false};
  OneKey one(pages);
  absl::StatusOr<KeyCopy> copy = one.Run();
  if (!copy.ok()) one.Abandon();
  return copy;
}

}  // namespace ferry::agent
