#include "common/redis/dump_payload.h"

#include "gtest/gtest.h"

namespace ferry::redis {
namespace {

TEST(DumpPayloadTest, Crc64MatchesRedis) {
  // The check value of Redis's crc64.c self-test.
  EXPECT_EQ(Crc64(0, "123456789"), 0xe9c6d914c4b8d9caULL);
  // Continuing a CRC over a split input is the CRC of the whole.
  EXPECT_EQ(Crc64(Crc64(0, "1234"), "56789"), 0xe9c6d914c4b8d9caULL);
}

TEST(DumpPayloadTest, ReadsTheFooterOfARealPayload) {
  // DUMP of SET k "hello" on Redis 7.0.15: type 0, the string, version 10, CRC64.
  const std::string dump("\x00\x05hello\x0a\x00\x63\x72\xdf\x76\x65\x34\x20\x0a", 17);
  ASSERT_EQ(PayloadVersion(dump), 10);
  EXPECT_EQ(PayloadRdbType(dump), 0);
  EXPECT_TRUE(PayloadChecksumValid(dump));
}

TEST(DumpPayloadTest, RewrittenVersionKeepsAValidChecksum) {
  const std::string dump("\x00\x05hello\x0a\x00\x63\x72\xdf\x76\x65\x34\x20\x0a", 17);
  const std::string newer = WithPayloadVersion(dump, 12);
  EXPECT_EQ(newer.size(), dump.size());
  EXPECT_EQ(PayloadVersion(newer), 12);
  EXPECT_TRUE(PayloadChecksumValid(newer));
  EXPECT_EQ(newer.substr(0, 7), dump.substr(0, 7));
  EXPECT_EQ(WithPayloadVersion(newer, 10), dump);
}

TEST(DumpPayloadTest, ShortPayloadsHaveNoFooter) {
  EXPECT_EQ(PayloadVersion("short"), std::nullopt);
  EXPECT_FALSE(PayloadChecksumValid("short"));
  EXPECT_EQ(PayloadRdbType(""), std::nullopt);
}

}  // namespace
}  // namespace ferry::redis
