#include "agent/dump_compare.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::Optional;

// DUMP framing: RDB type byte, body, then 2 bytes of RDB version and 8 of CRC64.
std::string Payload(const std::string& type_and_body, char version) {
  return type_and_body + std::string(1, version) + std::string(1, '\0') + std::string(8, 'c');
}

std::string Str(const std::string& s) { return std::string(1, static_cast<char>(s.size())) + s; }

const std::string kSetAB = std::string("\x02\x02", 2) + Str("a") + Str("b");
const std::string kSetBA = std::string("\x02\x02", 2) + Str("b") + Str("a");

TEST(SameDumpValueTest, EqualBodiesMatchWhateverTheTrailer) {
  const std::string body = std::string("\x00", 1) + Str("abc");
  EXPECT_TRUE(SameDumpValue(Payload(body, 9), Payload(body, 9)));
  EXPECT_TRUE(SameDumpValue(Payload(body, 9), Payload(body, 11)));
  EXPECT_FALSE(SameDumpValue(Payload(body, 9), Payload(std::string("\x00", 1) + Str("abd"), 9)));
}

TEST(SameDumpValueTest, HashTableSetsCompareByMembersNotOrder) {
  EXPECT_TRUE(SameDumpValue(Payload(kSetAB, 9), Payload(kSetBA, 10)));
  const std::string set_ac = std::string("\x02\x02", 2) + Str("a") + Str("c");
  EXPECT_FALSE(SameDumpValue(Payload(kSetAB, 9), Payload(set_ac, 9)));
}

TEST(SameDumpValueTest, HashesCompareFieldsWithTheirValues) {
  const std::string fv_gw = std::string("\x04\x02", 2) + Str("f") + Str("v") + Str("g") + Str("w");
  const std::string gw_fv = std::string("\x04\x02", 2) + Str("g") + Str("w") + Str("f") + Str("v");
  // The same strings paired differently: f=w, g=v.
  const std::string fw_gv = std::string("\x04\x02", 2) + Str("f") + Str("w") + Str("g") + Str("v");
  EXPECT_TRUE(SameDumpValue(Payload(fv_gw, 9), Payload(gw_fv, 9)));
  EXPECT_FALSE(SameDumpValue(Payload(fv_gw, 9), Payload(fw_gv, 9)));
}

TEST(SameDumpValueTest, ASetAndAHashOfTheSameStringsDiffer) {
  const std::string hash = std::string("\x04\x01", 2) + Str("a") + Str("b");
  EXPECT_FALSE(SameDumpValue(Payload(kSetAB, 9), Payload(hash, 9)));
}

TEST(SameDumpValueTest, UnreadableOrShortPayloadsAreDifferent) {
  EXPECT_FALSE(SameDumpValue("short", "other"));
  EXPECT_TRUE(SameDumpValue("short", "short"));
  const std::string truncated = std::string("\x02\x03", 2) + Str("b") + Str("a");  // 3 announced.
  EXPECT_FALSE(SameDumpValue(Payload(kSetAB, 9), Payload(truncated, 9)));
}

TEST(SortedDumpElementsTest, ReadsIntegerEncodedMembers) {
  // 0xc0: an 8-bit integer; 0xc1: 16-bit little-endian signed (0xfffe = -2).
  const std::string ints = std::string("\x02\x03\xc0\x05\xc1\xfe\xff", 7) + Str("x");
  EXPECT_THAT(SortedDumpElements(Payload(ints, 9)), Optional(ElementsAre("-2", "5", "x")));
  const std::string raw = std::string("\x02\x03", 2) + Str("x") + Str("5") + Str("-2");
  EXPECT_TRUE(SameDumpValue(Payload(ints, 9), Payload(raw, 9)));
}

TEST(SortedDumpElementsTest, ReadsLzfCompressedMembers) {
  // 0xc3, compressed length 5, plain length 10: a literal "a", then a back reference of 9
  // bytes at distance 1.
  const std::string lzf = std::string("\x02\x01\xc3\x05\x0a\x00\x61\xe0\x00\x00", 10);
  EXPECT_THAT(SortedDumpElements(Payload(lzf, 9)), Optional(ElementsAre(std::string(10, 'a'))));
}

TEST(SortedDumpElementsTest, HashElementsJoinFieldAndValue) {
  const std::string hash = std::string("\x04\x01", 2) + Str("f") + Str("value");
  EXPECT_THAT(SortedDumpElements(Payload(hash, 9)), Optional(ElementsAre("1:fvalue")));
}

TEST(SortedDumpElementsTest, OtherTypesAndTrailingBytesAreNotRead) {
  const std::string list = std::string("\x12\x01", 2) + Str("a");
  EXPECT_EQ(SortedDumpElements(Payload(list, 9)), std::nullopt);
  EXPECT_EQ(SortedDumpElements(Payload(kSetAB + "z", 9)), std::nullopt);
  EXPECT_EQ(SortedDumpElements("\x02"), std::nullopt);
}

}  // namespace
}  // namespace ferry::agent
