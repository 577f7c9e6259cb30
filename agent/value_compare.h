#pragma once

// Comparing one key's value on the source and the target logically, in pages: what `ferry
// verify` does when DUMP payloads cannot tell (they differ, the two sides write different
// payload versions, or the key is too big for one DUMP). The mirror image of ValueCopier
// (value_copy.h): every command it sends touches at most a page, so a big value is never held
// whole on either side or here.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/redis/capabilities.h"
#include "common/redis/router.h"

namespace ferry::agent {

struct ValueCompareOptions {
  // COUNT of HSCAN/SSCAN/ZSCAN, the window of LRANGE, XRANGE and XPENDING.
  int page_elements = 250;
  // The GETRANGE window for strings.
  uint64_t chunk_bytes = 1 << 20;
  // Hash field TTLs: how far apart (ms) the two sides' expiry times of a field may be. A copy
  // maps each expiry through measured clocks (expiry.h), shortening it by up to their
  // uncertainty.
  int64_t field_ttl_slack_ms = 1000;
};

// One side of a comparison: a router to the deployment (standalone or cluster), already in the
// right db, and what its servers can do. Both must outlive the call.
struct CompareSide {
  redis::Router* router;
  const redis::Capabilities* caps;
};

struct ValueDiff {
  bool equal = true;
  // When !equal: what differs, naming the type and the place ("hash: a field's value differs",
  // "list: element 5 differs", "stream: group g1 last-delivered-id differs (5-0 vs 4-0)").
  // Never any bytes of a value, a field or a member: only lengths, counts, offsets, indexes,
  // stream ids and the names of consumer groups and consumers.
  std::string detail;
  // The key was not of the type compared on one side at some point (it changed type or
  // vanished meanwhile): the caller checks the key again from the start.
  bool type_changed = false;
};

// Compares the value of `key`, whose TYPE is `type` on both sides ("string", "hash", "list",
// "set", "zset" or "stream"; another is INVALID_ARGUMENT), between `source` and `target`, page
// by page:
// - string: STRLEN, then GETRANGE windows of options.chunk_bytes on both sides.
// - hash: HLEN; HSCAN pages of the source, HMGET of their fields on the target; where both
//   sides have hash field TTLs, HPEXPIRETIME of those fields on both (a TTL on one side only, or
//   expiry times further apart than options.field_ttl_slack_ms, differ).
// - set: SCARD; SSCAN pages of the source, SMISMEMBER on the target (SISMEMBER pipelined where
//   the target lacks it).
// - zset: ZCARD; ZSCAN pages of the source, ZMSCORE on the target (else ZSCORE pipelined);
//   scores compared as numbers, since versions print them differently.
// - list: LLEN; LRANGE windows on both sides, element by element.
// - stream: XLEN and XINFO STREAM (last id; entries-added and max-deleted-entry-id where both
//   sides have the stream counters); XRANGE pages entry by entry; XINFO GROUPS (names,
//   last-delivered-id, pending count, entries-read where both have the counters and the
//   source knows it); per group XINFO CONSUMERS (names and pending counts; consumers without
//   pending entries only where the target can create them, XGROUP CREATECONSUMER) and
//   XPENDING pages (id, owner, delivery count). Delivery and idle times are not compared: a
//   copy has its own.
// Hash, set and zset are equal when their cardinalities are and every source element is found
// equal on the target. The comparison stops at the first difference. Afterwards (and after an
// error reply about the key, WRONGTYPE say) both sides' TYPE is read again: when it is no
// longer `type` on either, the result is a ValueDiff with type_changed. Transport errors and
// fatal replies (NOPERM, OOM...) are returned as a status, as is any other error reply.
// Not thread-safe: uses both routers from the calling thread, which must have nothing queued.
absl::StatusOr<ValueDiff> CompareValue(CompareSide source, CompareSide target,
                                       absl::string_view key, absl::string_view type,
                                       const ValueCompareOptions& options = {});

}  // namespace ferry::agent
