#include "common/redis/slot.h"

#include <string>

#include "gtest/gtest.h"

namespace ferry::redis {
namespace {

TEST(Crc16Test, MatchesTheXmodemCheckValue) {
  // The standard check value of CRC-16/XMODEM, also in Redis' crc16.c comment.
  EXPECT_EQ(Crc16("123456789"), 0x31C3);
  EXPECT_EQ(Crc16(""), 0);
}

TEST(Crc16Test, IsBinarySafe) {
  const std::string with_nul("a\0b", 3);
  EXPECT_NE(Crc16(with_nul), Crc16("a"));
  EXPECT_NE(Crc16(with_nul), Crc16("ab"));
}

TEST(KeySlotTest, KnownValuesFromRedis) {
  // Values from CLUSTER KEYSLOT on a real server.
  EXPECT_EQ(KeySlot("foo"), 12182);
  EXPECT_EQ(KeySlot("bar"), 5061);
  EXPECT_EQ(KeySlot("123456789"), 0x31C3 % kClusterSlots);
  EXPECT_EQ(KeySlot(""), 0);
}

TEST(KeySlotTest, HashTagSelectsTheSlot) {
  EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("{user1000}.followers"));
  EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("user1000"));
  EXPECT_EQ(KeySlot("x{foo}y"), KeySlot("foo"));
}

TEST(KeySlotTest, OnlyTheFirstOpeningBraceCounts) {
  // The tag is "{bar" from the first '{' to the first '}' after it.
  EXPECT_EQ(KeySlot("foo{{bar}}zap"), KeySlot("{bar"));
  EXPECT_EQ(KeySlot("foo{bar}{zap}"), KeySlot("bar"));
}

TEST(KeySlotTest, EmptyOrUnclosedTagHashesTheWholeKey) {
  EXPECT_EQ(KeySlot("foo{}{bar}"), Crc16("foo{}{bar}") % kClusterSlots);
  EXPECT_NE(KeySlot("foo{}{bar}"), KeySlot("bar"));
  EXPECT_EQ(KeySlot("foo{bar"), Crc16("foo{bar") % kClusterSlots);
  EXPECT_EQ(KeySlot("foo}bar{"), Crc16("foo}bar{") % kClusterSlots);
}

TEST(KeySlotTest, SlotsAreInRange) {
  for (int i = 0; i < 10000; ++i) {
    const int slot = KeySlot("key:" + std::to_string(i));
    ASSERT_GE(slot, 0);
    ASSERT_LT(slot, kClusterSlots);
  }
}

}  // namespace
}  // namespace ferry::redis
