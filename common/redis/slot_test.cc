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

TEST(SlotSetTest, RangesRoundTrip) {
  SlotSet set = SlotSet::FromRanges({{10, 12}, {0, 0}, {13, 20}, {16383, 16383}});
  EXPECT_EQ(set.size(), 1 + 11 + 1);
  EXPECT_EQ(set.Ranges(), (SlotRanges{{0, 0}, {10, 20}, {16383, 16383}}));
  EXPECT_EQ(set.first(), 0);
  EXPECT_EQ(set.last(), 16383);
  EXPECT_TRUE(set.Contains(15));
  EXPECT_FALSE(set.Contains(9));
  EXPECT_EQ(SlotSet().first(), -1);
  EXPECT_TRUE(SlotSet().Ranges().empty());
}

TEST(SlotSetTest, SetOperations) {
  SlotSet a = SlotSet::FromRanges({{0, 99}});
  const SlotSet b = SlotSet::FromRanges({{50, 149}});
  SlotSet both = a;
  both &= b;
  EXPECT_EQ(both.Ranges(), (SlotRanges{{50, 99}}));
  SlotSet either = a;
  either |= b;
  EXPECT_EQ(either.Ranges(), (SlotRanges{{0, 149}}));
  a -= b;
  EXPECT_EQ(a.Ranges(), (SlotRanges{{0, 49}}));
  EXPECT_NE(a, b);
  a.Remove(0);
  EXPECT_EQ(a.first(), 1);
}

TEST(SlotSetTest, ClipsOutOfRangeSlots) {
  EXPECT_EQ(SlotSet::FromRanges({{-5, 2}, {16380, 20000}}).Ranges(),
            (SlotRanges{{0, 2}, {16380, 16383}}));
}

TEST(SlotRangesTextTest, FormatAndParse) {
  EXPECT_EQ(FormatSlotRanges({{0, 5460}, {42, 42}, {10923, 16383}}), "0-5460,42,10923-16383");
  EXPECT_EQ(FormatSlotRanges({}), "");
  auto parsed = ParseSlotRanges("0-5460,42,10923-16383");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, (SlotRanges{{0, 5460}, {42, 42}, {10923, 16383}}));
  ASSERT_TRUE(ParseSlotRanges("").ok());
  EXPECT_TRUE(ParseSlotRanges("").value().empty());
  for (const char* bad : {"x", "1-", "-1", "5-3", "0-16384", "1,,2", "1-2-3"}) {
    EXPECT_FALSE(ParseSlotRanges(bad).ok()) << bad;
  }
}

TEST(TagForSlotTest, EverySlotHasATagThatHashesToIt) {
  for (int slot = 0; slot < kClusterSlots; ++slot) {
    const std::string& tag = TagForSlot(slot);
    ASSERT_FALSE(tag.empty()) << slot;
    ASSERT_EQ(KeySlot(tag), slot);
    ASSERT_EQ(KeySlot("ferry:tmp:{" + tag + "}:1"), slot);
  }
}

}  // namespace
}  // namespace ferry::redis
