#include "common/redis/router.h"
#include "gtest/gtest.h"

namespace ferry::redis {
namespace {

TEST(KeyArgumentTest, ContainerCommandsNameTheirKeyAfterTheSubcommand) {
  EXPECT_EQ(KeyArgument({"RESTORE", "k", "0", "payload"}), 1u);
  EXPECT_EQ(KeyArgument({"XGROUP", "CREATE", "k", "g", "0"}), 2u);
  EXPECT_EQ(KeyArgument({"xinfo", "STREAM", "k"}), 2u);
  EXPECT_EQ(KeyArgument({"MEMORY", "USAGE", "k"}), 2u);
  EXPECT_EQ(KeyArgument({"OBJECT", "ENCODING", "k"}), 2u);
  // A key that happens to be named like a container command is still argv[1].
  EXPECT_EQ(KeyArgument({"GET", "XGROUP"}), 1u);
  EXPECT_EQ(KeyArgument({"MEMORY", "STATS"}), 1u);
}

}  // namespace
}  // namespace ferry::redis
