#pragma once

// Which SCAN cursors and which keys belong to a shard: the cursor rules of both schemes
// (DESIGN.md, "Shards: the SCAN cursor math") and, for a cluster source, the slot filter.

#include <cstdint>

#include "absl/strings/string_view.h"
#include "agent/copier.h"
#include "common/redis/slot.h"

namespace ferry::agent {

class ShardWalk {
 public:
  // `keep`: cluster source, the slots whose keys this walk copies (the shard's slots that the
  // node read serves); ignored for a standalone source, which keeps every key.
  ShardWalk(const ShardSpec& spec, const redis::SlotSet& keep);

  // The cursor of the shard's first SCAN.
  uint64_t start_cursor() const;
  // True once `returned_cursor` (from SCAN) lies past the shard, or the walk wrapped.
  bool Finished(uint64_t returned_cursor) const;
  // Whether a key SCAN returned is this walk's to copy. Per-slot scheme: only keys of the
  // shard's slot range (the last SCAN of a range returns keys of the next slots too).
  bool Keep(absl::string_view key) const;
  // The COUNT of the SCAN from `cursor`: `batch`, or near the end of a single-dict shard about
  // the keys left in it (from `db_keys`, the node's key count; 0: unknown), so that the last
  // SCAN does not run far into the next shard and copy its keys twice (per-slot walks drop
  // those by slot, Keep).
  // `exact`: the source's SCAN COUNT 1 visits one position (Capabilities
  // scan_count_one_is_one_position): near the end of a single-dict shard each COUNT asks for
  // half the keys left and the last few are read with COUNT 1, and PastEnd tells a call that ran
  // into the next shard (the reader reads it again with COUNT 1, or drops a COUNT 1 call's keys).
  int ScanCount(uint64_t cursor, uint64_t db_keys, int batch, bool exact) const;
  // Single-dict scheme: a SCAN that returned `returned_cursor` and finished the shard without
  // landing on the next shard's first cursor (or wrapping) visited a position of the next shard
  // last. After a COUNT 1 call, which returns the keys of one position, those keys are the next
  // shard's: dropped here, copied there.
  bool PastEnd(uint64_t returned_cursor) const;

 private:
  redis::ScanScheme scheme_;
  int bits_;
  uint64_t index_;
  int first_slot_;
  int last_slot_;
  bool filter_;
  redis::SlotSet keep_;
};

}  // namespace ferry::agent
