#include "agent/shard_walk.h"

#include <algorithm>

#include "common/redis/scan_math.h"

namespace ferry::agent {

ShardWalk::ShardWalk(const ShardSpec& spec, const redis::SlotSet& keep)
    : scheme_(spec.cluster() ? spec.scheme : redis::ScanScheme::kSingleDict),
      bits_(spec.shard_bits),
      index_(spec.shard_index),
      first_slot_(spec.slots.first()),
      last_slot_(spec.slots.last()),
      filter_(spec.cluster()),
      keep_(keep) {
  if (filter_) keep_ &= spec.slots;
}

uint64_t ShardWalk::start_cursor() const {
  return scheme_ == redis::ScanScheme::kPerSlot ? redis::SlotShardStartCursor(first_slot_)
                                                : redis::ShardStartCursor(index_, bits_);
}

bool ShardWalk::Finished(uint64_t returned_cursor) const {
  return scheme_ == redis::ScanScheme::kPerSlot
             ? redis::SlotShardFinished(returned_cursor, last_slot_)
             : redis::ShardFinished(returned_cursor, index_, bits_);
}

int ShardWalk::ScanCount(uint64_t cursor, uint64_t db_keys, int batch, bool exact) const {
  if (scheme_ == redis::ScanScheme::kPerSlot) return batch;
  if (!exact || bits_ == 0 || db_keys == 0) {
    return redis::ShardScanCount(cursor, index_, bits_, db_keys, batch);
  }
  // Exact ends: near the end, three quarters of the keys left per call, so that a call rarely
  // reaches the end (one that does is read again with half its COUNT: ShardReader::ScanLoop)
  // and the end is reached in a few calls; the last key or so one position per call.
  constexpr double kTailShare = 0.75;
  const double left = redis::ShardRemaining(cursor, index_, bits_) * static_cast<double>(db_keys);
  if (left * kTailShare >= batch) return batch;
  return std::max(1, static_cast<int>(left * kTailShare));
}

bool ShardWalk::PastEnd(uint64_t returned_cursor) const {
  if (scheme_ == redis::ScanScheme::kPerSlot || bits_ == 0 || returned_cursor == 0) return false;
  if (!redis::ShardFinished(returned_cursor, index_, bits_)) return false;
  const uint64_t last = (uint64_t{1} << bits_) - 1;
  return index_ == last || returned_cursor != redis::ShardStartCursor(index_ + 1, bits_);
}

bool ShardWalk::Keep(absl::string_view key) const {
  return !filter_ || keep_.Contains(redis::KeySlot(key));
}

}  // namespace ferry::agent
