#pragma once

// Copying keys type by type, for when a DUMP payload cannot be RESTOREd on the target (a newer
// source, another engine, RESTORE forbidden) or a key is too big for one DUMP/RESTORE (DESIGN.md,
// "Versions" and "Big keys"). Two ways in:
//
// - Small values in batches (ShardReader reads them whole, ShardWriter rebuilds them):
//   AppendWholeRead queues the one command that reads a value, AppendRebuild the commands that
//   write it into a temporary key, AppendFinish its TTL and the RENAME over the real key. The
//   writer pipelines many keys through one Router::Execute.
// - One key at a time, in pages (ValueCopier): big keys, streams of sources without XINFO
//   STREAM FULL, and keys whose RESTORE was refused. Never holds a whole value; every command
//   it sends touches at most a page.
//
// Values are always built in a temporary key (TempKeys) and renamed over the real one, so a
// reader on the target never sees a half-built value, and the TTL is set on the temporary key
// before the RENAME (which keeps it), so a key never exists on the target without its TTL.

#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/copier.h"
#include "agent/expiry.h"
#include "common/redis/capabilities.h"
#include "common/redis/connection.h"
#include "common/redis/router.h"

namespace ferry::agent {

// Strings that must outlive a Router::Execute (the router keeps views): callers clear it after
// each Execute. A deque, so adding never moves earlier strings.
using ArgArena = std::deque<std::string>;

// Names of temporary keys on the target: "ferry:tmp:{<tag>}:<id>:<n>", where <tag> is a short
// string that hashes to the real key's cluster slot (RENAME must stay within one slot), <id> a
// random 64-bit number in hex chosen per TempKeys object and <n> a counter. Not thread-safe.
class TempKeys {
 public:
  TempKeys();
  std::string For(absl::string_view key);

 private:
  std::string id_;
  uint64_t next_ = 0;
};

// ---- Small values, in batches.

// Why the target cannot hold a value of `type` (TYPE's name): a module type (only DUMP/RESTORE
// copies those), a stream into a target without streams; nullopt when it can. The one wording of
// these per-key failures, for ValueCopier and the batch writer alike.
std::optional<std::string> CannotHold(absl::string_view type,
                                      const redis::Capabilities& target_caps);

// Types (as TYPE names them) that AppendWholeRead reads with one command from a source with
// `source_caps`: string, hash, list, set, zset, and stream where the source has XINFO STREAM
// FULL (Redis 6.0). The others (older sources' streams, module types) are copied by ValueCopier.
// The command that tells a value's length, by TYPE (STRLEN, HLEN, LLEN, SCARD, ZCARD, XLEN);
// empty for types without one.
absl::string_view LengthCommand(absl::string_view type);

bool ReadableWhole(absl::string_view type, const redis::Capabilities& source_caps);

// Queues on `source` the one command that reads a whole value of `type`: GET, HGETALL,
// LRANGE 0 -1, SMEMBERS, ZRANGE 0 -1 WITHSCORES, XINFO STREAM FULL COUNT 0 (every entry and
// every pending entry). `type` must be ReadableWhole. XINFO answers an error for a key that is
// gone; the others an empty reply.
void AppendWholeRead(redis::Connection& source, absl::string_view type, absl::string_view key);

// What AppendRebuild needs besides the value.
struct RebuildOptions {
  int max_per_command = 500;  // Elements per HSET/RPUSH/SADD/ZADD.
  // Streams: the two sides' capabilities, which gate ENTRIESADDED/MAXDELETEDID and ENTRIESREAD
  // (both sides have stream_counters) and XGROUP CREATECONSUMER (the target has it) as
  // ValueCopier does; unset, none of them is sent. Must outlive the call.
  const redis::Capabilities* source_caps = nullptr;
  const redis::Capabilities* target_caps = nullptr;
  // Streams: the source's clock now (Unix ms), from which pending entries' idle times are
  // counted (now - delivery-time).
  int64_t source_now_ms = 0;
};

// Queues on `target` the commands that write `elements` into `dest` (which must not exist):
// for a string (a bulk reply) SET; for a hash, list, set or zset (the flat array reply of
// AppendWholeRead, or one page of HSCAN/LRANGE/SSCAN/ZSCAN) HSET / RPUSH / SADD / ZADD of at
// most `options.max_per_command` elements each (a hash element is a field and its value; a zset
// element a member and its score, written exactly as the source printed it, `inf` and `-inf`
// included); for a stream (the XINFO STREAM FULL reply of AppendWholeRead) its entries, last id,
// counters, groups, consumers and pending entries (stream_copy.h AppendStreamRebuild). The
// router keeps views of `elements`, `dest` and `arena`: all must outlive Execute. Returns the
// number of commands queued (0 for an empty array: nothing to write).
size_t AppendRebuild(redis::Router& target, absl::string_view type, absl::string_view dest,
                     redis::ReplyView elements, const RebuildOptions& options, ArgArena& arena);

// Queues the end of a rebuild of `key` in `tmp`: the TTL on `tmp` (`ttl` from
// ExpiryMapper::RestoreTtl: PEXPIREAT when `absolute`, else PEXPIRE; nothing for nullopt, a key
// without TTL), then `RENAME tmp key` when `replace`, else `RENAMENX tmp key` (reply 0: the key
// exists on the target and `tmp` is left for the caller to compare and remove). With
// `unlink_first` (big values), `UNLINK key` goes before the RENAME so the old value is freed off
// the target's main thread. Returns the number of commands queued; the RENAME/RENAMENX is last.
size_t AppendFinish(redis::Router& target, absl::string_view tmp, absl::string_view key,
                    std::optional<int64_t> ttl, bool absolute, bool replace, bool unlink_first,
                    ArgArena& arena);

// ---- One key at a time, in pages.

struct ValueCopyOptions {
  // Strings: the GETRANGE window (then APPEND). Other types: a page stops growing past this.
  uint64_t chunk_bytes = 1 << 20;
  // COUNT of HSCAN/SSCAN/ZSCAN, the window of LRANGE, XRANGE and XPENDING. 1000 made a ZSCAN
  // of a 3M-member zset take up to 17 ms on the source (bench/bigkeys.sh).
  int page_elements = 250;
  // Elements per HSET/RPUSH/SADD/ZADD/XADD... command on the target (500: ZADDs of 17 ms).
  int max_per_command = 250;
  OnConflict on_conflict = OnConflict::kReplace;
  // A hash with field TTLs into a target without them: copied without the field TTLs instead
  // of failing.
  bool drop_field_ttls = false;
  // A key that changes while it is copied is copied again, this many attempts in all, then
  // reported as failed.
  int max_attempts = 3;
};

// What copying one key came to.
struct KeyCopy {
  enum class Outcome {
    kCopied,    // The target holds the source's value (written, or already equal).
    kVanished,  // Gone from the source before it could be read whole.
    kExpired,   // Its TTL ran out during the copy; removed from the target (replace policy).
    kSkipped,   // Exists on the target with another value; --on-conflict skip.
    kFailed,    // `reason` says why.
  };
  Outcome outcome = Outcome::kCopied;
  // kFailed, kSkipped: why, naming the key's type and what the target lacks; never the value.
  std::string reason;
  uint64_t bytes = 0;  // Value bytes written to the target.
};

// Copies single keys command by command in pages into a temporary key, then renames it over the
// real key. Per type: string GETRANGE/APPEND windows; hash HSCAN/HSET; set SSCAN/SADD; zset
// ZSCAN/ZADD; list LRANGE/RPUSH; stream XRANGE/XADD with explicit ids, then XSETID (with
// ENTRIESADDED/MAXDELETEDID where both sides have them), consumer groups (XGROUP CREATE at the
// last-delivered id, ENTRIESREAD where both sides have it), consumers (XGROUP CREATECONSUMER
// where the target has it) and pending entries with their owners, idle times and delivery counts
// (XCLAIM ... IDLE RETRYCOUNT FORCE JUSTID); hash field TTLs where both sides have them. A type
// the target cannot hold (a stream into Redis 4.0, a module type) is a kFailed outcome.
// A value that changed while it was read (type, encoding, length, or for a stream its last id
// differ between before and after) is copied again. The TTL is read after the copy, so a TTL
// shortened meanwhile is honoured; it is never extended (expiry.h).
// Not thread-safe; uses `source` and `target` from the calling thread only.
class ValueCopier {
 public:
  // `source`: a connection to the node that serves the keys, in the right db (READONLY sent if
  // it is a replica), with no replies pending. `clock`: the source's clock when it answers
  // PEXPIRETIME (AbsoluteExpiryClock), else nullopt (PTTL). `expiry` maps expiries to the
  // target's terms. All references must outlive the copier.
  ValueCopier(redis::Connection& source, const redis::Capabilities& source_caps,
              std::optional<SourceClock> clock, redis::Router& target,
              const redis::Capabilities& target_caps, const ExpiryMapper& expiry,
              TempKeys& temp_keys, ValueCopyOptions options);

  // Copies `key`. Transport errors and fatal replies of either side (OOM, NOPERM, LOADING that
  // does not end) are returned as a status, after a best-effort removal of the temporary key;
  // everything about this one key alone is a KeyCopy.
  absl::StatusOr<KeyCopy> Copy(absl::string_view key);

 private:
  redis::Connection& source_;
  const redis::Capabilities& source_caps_;
  const std::optional<SourceClock> clock_;
  redis::Router& target_;
  const redis::Capabilities& target_caps_;
  const ExpiryMapper& expiry_;
  TempKeys& temp_keys_;
  const ValueCopyOptions options_;
};

}  // namespace ferry::agent
