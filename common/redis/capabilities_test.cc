#include "common/redis/capabilities.h"

#include "gtest/gtest.h"

namespace ferry::redis {
namespace {

TEST(CapabilitiesTest, ByVersion) {
  const Capabilities v4 = Capabilities::FromInfo("# Server\r\nredis_version:4.0.14\r\n");
  EXPECT_FALSE(v4.restore_absttl());
  EXPECT_FALSE(v4.pexpiretime());
  const Capabilities v62 = Capabilities::FromInfo("redis_version:6.2.14\r\n");
  EXPECT_TRUE(v62.restore_absttl());
  EXPECT_TRUE(v62.set_pxat());
  EXPECT_TRUE(v62.scan_type());
  EXPECT_FALSE(v62.pexpiretime());
  EXPECT_TRUE(v62.smismember());
  EXPECT_TRUE(v62.zmscore());
  const Capabilities v60 = Capabilities::FromInfo("redis_version:6.0.20\r\n");
  EXPECT_FALSE(v60.smismember());
  EXPECT_FALSE(v60.zmscore());
  EXPECT_TRUE(Capabilities::FromInfo("redis_version:7.0.15\r\n").pexpiretime());
  // Valkey reports a compatible redis_version.
  EXPECT_TRUE(
      Capabilities::FromInfo("redis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.0.1")
          .pexpiretime());
}

TEST(CapabilitiesTest, UnreadableVersionPromisesNothingNew) {
  const Capabilities unknown = Capabilities::FromInfo("");
  EXPECT_EQ(unknown.version(), std::make_pair(4, 0));
  EXPECT_FALSE(unknown.restore_absttl());
  EXPECT_FALSE(unknown.pexpiretime());
}

}  // namespace
}  // namespace ferry::redis
