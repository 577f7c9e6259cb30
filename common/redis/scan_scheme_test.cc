#include "common/redis/scan_math.h"
#include "gtest/gtest.h"

namespace ferry::redis {
namespace {

// Which cursor scheme a node uses, from what its INFO says (DESIGN.md, "Shards").
TEST(ScanSchemeTest, FromServerInfo) {
  auto scheme = [](const char* info, bool cluster = true) { return ScanSchemeOf(info, cluster); };
  EXPECT_EQ(scheme("redis_version:7.0.15\r\n"), ScanScheme::kSingleDict);
  EXPECT_EQ(scheme("redis_version:7.2.5\r\n"), ScanScheme::kSingleDict);
  EXPECT_EQ(scheme("redis_version:6.2.14\r\n"), ScanScheme::kSingleDict);
  EXPECT_EQ(scheme("redis_version:7.3.240\r\n"), ScanScheme::kPerSlot);  // 7.4 RC.
  EXPECT_EQ(scheme("redis_version:7.4.1\r\n"), ScanScheme::kPerSlot);
  EXPECT_EQ(scheme("redis_version:8.0.2\r\n"), ScanScheme::kPerSlot);
  EXPECT_EQ(scheme("redis_version:10.0.0\r\n"), ScanScheme::kPerSlot);
  // Valkey reports a compatible redis_version; its own version decides.
  EXPECT_EQ(scheme("redis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.0.1\r\n"),
            ScanScheme::kPerSlot);
  EXPECT_EQ(scheme("redis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:7.2.7\r\n"),
            ScanScheme::kSingleDict);
  EXPECT_EQ(scheme("redis_version:7.2.4\r\nserver_name:valkey\r\n"), ScanScheme::kSingleDict);
  // Standalone servers keep one table per database whatever their version.
  EXPECT_EQ(scheme("redis_version:8.0.2\r\n", false), ScanScheme::kSingleDict);
  EXPECT_EQ(scheme("", true), ScanScheme::kSingleDict);
  EXPECT_EQ(ScanSchemeName(ScanScheme::kPerSlot), "per-slot");
}

}  // namespace
}  // namespace ferry::redis
