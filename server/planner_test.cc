#include "server/planner.h"

#include "gtest/gtest.h"
#include "server/copy_planner.h"

namespace ferry::server {
namespace {

using redis::SlotRanges;

TEST(SplitSlotsTest, EqualContiguousPieces) {
  EXPECT_EQ(SplitSlots({{0, 5460}}, 1), (SlotRanges{{0, 5460}}));
  EXPECT_EQ(SplitSlots({{0, 99}}, 4), (SlotRanges{{0, 24}, {25, 49}, {50, 74}, {75, 99}}));
  EXPECT_EQ(SplitSlots({{0, 9}}, 3), (SlotRanges{{0, 3}, {4, 7}, {8, 9}}));
}

TEST(SplitSlotsTest, NeverJoinsTwoRangesOfTheNode) {
  EXPECT_EQ(SplitSlots({{0, 9}, {100, 109}}, 1), (SlotRanges{{0, 9}, {100, 109}}));
  EXPECT_EQ(SplitSlots({{0, 9}, {100, 104}}, 3), (SlotRanges{{0, 4}, {5, 9}, {100, 104}}));
}

TEST(SplitSlotsTest, MorePiecesThanSlots) {
  EXPECT_EQ(SplitSlots({{7, 9}}, 8), (SlotRanges{{7, 7}, {8, 8}, {9, 9}}));
}

TEST(ShardBitsForKeysTest, AboutSixteenThousandKeysPerShard) {
  EXPECT_EQ(ShardBitsForKeys(0), 0);
  EXPECT_EQ(ShardBitsForKeys(32767), 0);
  EXPECT_EQ(ShardBitsForKeys(32768), 1);
  EXPECT_EQ(ShardBitsForKeys(200000), 3);
  EXPECT_EQ(ShardBitsForKeys(uint64_t{1} << 40), 10);
}

TEST(AutoParallelTest, FourNearTheServersMoreFartherUpToSixteen) {
  EXPECT_EQ(AutoParallel(absl::ZeroDuration()), 4);
  EXPECT_EQ(AutoParallel(absl::Microseconds(900)), 4);   // Another availability zone.
  EXPECT_EQ(AutoParallel(absl::Microseconds(2500)), 8);  // Another region, close.
  EXPECT_EQ(AutoParallel(absl::Milliseconds(6)), 12);
  EXPECT_EQ(AutoParallel(absl::Milliseconds(10)), 16);
  EXPECT_EQ(AutoParallel(absl::Milliseconds(80)), 16);
}

TEST(ParseKeyspaceTest, ReadsEveryDatabase) {
  const auto keyspace = ParseKeyspace(
      "# Keyspace\r\ndb0:keys=120,expires=4,avg_ttl=0\r\ndb3:keys=7,expires=0,avg_ttl=0\r\n");
  EXPECT_EQ(keyspace.size(), 2u);
  EXPECT_EQ(keyspace.at(0), 120u);
  EXPECT_EQ(keyspace.at(3), 7u);
}

}  // namespace
}  // namespace ferry::server
