#include "agent/shard_walk.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/redis/scan_math.h"
#include "gtest/gtest.h"

namespace ferry::agent {
namespace {

using redis::KeySlot;
using redis::ScanScheme;
using redis::SlotSet;

// A key whose CRC16 slot is `slot`.
std::string KeyInSlot(int slot) {
  for (int i = 0;; ++i) {
    std::string key = absl::StrCat("key:", i);
    if (KeySlot(key) == slot) return key;
  }
}

ShardSpec PerSlotShard(int first, int last) {
  ShardSpec spec;
  spec.slots = SlotSet::FromRanges({{first, last}});
  spec.scheme = ScanScheme::kPerSlot;
  return spec;
}

TEST(ShardWalkTest, StandaloneKeepsEveryKeyAndUsesTheSingleDictRule) {
  ShardSpec spec;
  spec.shard_bits = 3;
  spec.shard_index = 5;
  const ShardWalk walk(spec, SlotSet());
  EXPECT_EQ(walk.start_cursor(), redis::ShardStartCursor(5, 3));
  for (uint64_t cursor : {0ull, 1ull, 5ull, 13ull, 0x1000ull}) {
    EXPECT_EQ(walk.Finished(cursor), redis::ShardFinished(cursor, 5, 3)) << cursor;
  }
  for (int slot : {0, 100, 16383}) EXPECT_TRUE(walk.Keep(KeyInSlot(slot)));
}

TEST(ShardWalkTest, PerSlotShardStartsAtItsFirstSlotAndEndsPastItsLast) {
  const ShardWalk walk(PerSlotShard(100, 200), SlotSet::FromRanges({{0, 16383}}));
  EXPECT_EQ(walk.start_cursor(), 100u);
  EXPECT_FALSE(walk.Finished((uint64_t{7} << 14) | 100));
  EXPECT_FALSE(walk.Finished((uint64_t{7} << 14) | 200));
  EXPECT_FALSE(walk.Finished(150));
  EXPECT_TRUE(walk.Finished(201));
  EXPECT_TRUE(walk.Finished((uint64_t{3} << 14) | 5000));
  EXPECT_TRUE(walk.Finished(0));
}

TEST(ShardWalkTest, PerSlotShardDropsKeysOutsideItsRange) {
  // The last SCAN of [100, 200] runs into slots 201 and up; earlier ones never go below 100
  // but a resumed cursor may: both sides are dropped by CRC16.
  const ShardWalk walk(PerSlotShard(100, 200), SlotSet::FromRanges({{0, 16383}}));
  for (int slot : {100, 101, 150, 199, 200}) EXPECT_TRUE(walk.Keep(KeyInSlot(slot))) << slot;
  for (int slot : {0, 99, 201, 202, 16383}) EXPECT_FALSE(walk.Keep(KeyInSlot(slot))) << slot;
  // A hash tag decides the slot.
  const std::string tagged = absl::StrCat("{", KeyInSlot(150), "}:anything");
  EXPECT_TRUE(walk.Keep(tagged));
}

TEST(ShardWalkTest, ClusterShardKeepsOnlySlotsTheNodeReadServes) {
  ShardSpec spec;
  spec.slots = SlotSet::FromRanges({{0, 5460}});
  spec.shard_bits = 1;
  spec.shard_index = 1;
  // Slots 5000-5460 moved to another node before this attempt: read there later.
  const ShardWalk walk(spec, SlotSet::FromRanges({{0, 4999}, {9000, 9100}}));
  EXPECT_EQ(walk.start_cursor(), redis::ShardStartCursor(1, 1));
  EXPECT_TRUE(walk.Keep(KeyInSlot(0)));
  EXPECT_TRUE(walk.Keep(KeyInSlot(4999)));
  EXPECT_FALSE(walk.Keep(KeyInSlot(5000)));
  EXPECT_FALSE(walk.Keep(KeyInSlot(5460)));
  // Served by the node but not the shard's: another shard copies it.
  EXPECT_FALSE(walk.Keep(KeyInSlot(9000)));
}

}  // namespace
}  // namespace ferry::agent
