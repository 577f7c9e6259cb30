#include "agent/shard_walk.h"

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

int ShardWalk::ScanCount(uint64_t cursor, uint64_t db_keys, int batch) const {
  if (scheme_ == redis::ScanScheme::kPerSlot) return batch;
  return redis::ShardScanCount(cursor, index_, bits_, db_keys, batch);
}

bool ShardWalk::Keep(absl::string_view key) const {
  return !filter_ || keep_.Contains(redis::KeySlot(key));
}

}  // namespace ferry::agent
