// Preflight's permission probes against ACL users (issue 7): every command the copy sends is
// checked before the first write (MGET on a standalone source; SET, and DEL or GET/DUMP, on the
// target), on a key the copy touches, and a key-pattern refusal is told apart from a missing
// command.

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/testing/compare.h"
#include "common/testing/redis_helpers.h"
#include "common/testing/redis_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/ferry_cli.h"

namespace ferry::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// `app:1`..`app:n` (strings, hashes and lists, a third with TTLs) and `other:1`..`other:n`.
void LoadAppKeys(redis::Connection& conn, int n) {
  for (int i = 1; i <= n; ++i) {
    const std::string key = absl::StrCat("app:", i);
    absl::StatusOr<redis::Reply> reply =
        i % 3 == 0   ? conn.Command({"HSET", key, "f", absl::StrCat(i)})
        : i % 3 == 1 ? conn.Command({"SET", key, absl::StrCat("value-", i)})
                     : conn.Command({"RPUSH", key, "a", "b"});
    ASSERT_TRUE(reply.ok()) << reply.status();
    if (i % 3 == 1) {
      ASSERT_TRUE(conn.Command({"PEXPIRE", key, "300000"}).ok());
    }
    ASSERT_TRUE(conn.Command({"SET", absl::StrCat("other:", i), "x"}).ok());
  }
}

int64_t DbSize(redis::Connection& conn) {
  absl::StatusOr<redis::Reply> size = conn.Command({"DBSIZE"});
  EXPECT_TRUE(size.ok()) << size.status();
  return size.ok() ? size->integer() : -1;
}

class MigratePermissionsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(RequireRedisServerBinary().ok()); }
};

TEST_F(MigratePermissionsTest, TargetUserWithoutSetIsRefusedBeforeAnyWrite) {
  RedisServerOptions target_options;
  target_options.acl_lines = {"user noset on >pw ~* &* +@all -set"};
  auto source = StartServer();
  auto target = StartServer(target_options);
  ASSERT_TRUE(source && target);
  redis::Connection src = Connect(*source);
  // Strings are written with SET, everything else with RESTORE (which this user may run).
  ASSERT_TRUE(LoadMixedData(src, 0, 2000, 3, 0.2).ok());
  CliResult r = RunFerry({"migrate", "--from", source->uri(), "--to",
                          WithUser(target->uri(), "noset"), "--progress", "none"},
                         {{"FERRY_TO_PASSWORD", "pw"}});
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_THAT(r.output, HasSubstr("the target does not allow SET"));
  redis::Connection dst = Connect(*target);
  EXPECT_EQ(DbSize(dst), 0);
}

TEST_F(MigratePermissionsTest, SourceUserWithoutMgetIsRefused) {
  RedisServerOptions source_options;
  source_options.acl_lines = {"user nomget on >pw ~* &* -@all +@read +@connection -mget"};
  auto source = StartServer(source_options);
  auto target = StartServer();
  ASSERT_TRUE(source && target);
  redis::Connection src = Connect(*source);
  ASSERT_TRUE(LoadMixedData(src, 0, 500, 5, 0).ok());
  CliResult r = RunFerry({"migrate", "--from", WithUser(source->uri(), "nomget"), "--to",
                          target->uri(), "--progress", "none"},
                         {{"FERRY_FROM_PASSWORD", "pw"}});
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_THAT(r.output, HasSubstr("the source does not allow MGET"));
  redis::Connection dst = Connect(*target);
  EXPECT_EQ(DbSize(dst), 0);
}

TEST_F(MigratePermissionsTest, TargetUserWithoutDelIsRefusedOnlyWhenReplacing) {
  RedisServerOptions target_options;
  target_options.acl_lines = {"user nodel on >pw ~* &* +@all -del"};
  auto source = StartServer();
  auto target = StartServer(target_options);
  ASSERT_TRUE(source && target);
  redis::Connection src = Connect(*source);
  ASSERT_TRUE(LoadMixedData(src, 0, 500, 6, 0.2).ok());
  const std::string to = WithUser(target->uri(), "nodel");
  CliResult replace =
      RunFerry({"migrate", "--from", source->uri(), "--to", to, "--progress", "none"},
               {{"FERRY_TO_PASSWORD", "pw"}});
  EXPECT_EQ(replace.exit_code, 3) << replace.output;
  EXPECT_THAT(replace.output, HasSubstr("the target does not allow DEL"));
  redis::Connection dst = Connect(*target);
  EXPECT_EQ(DbSize(dst), 0);
  // The DEL probe changed nothing, and with skip no DEL is ever sent.
  CliResult skip = RunFerry({"migrate", "--from", source->uri(), "--to", to, "--on-conflict",
                             "skip", "--progress", "none"},
                            {{"FERRY_TO_PASSWORD", "pw"}});
  EXPECT_EQ(skip.exit_code, 0) << skip.output;
  EXPECT_TRUE(SameData(src, dst));
}

TEST_F(MigratePermissionsTest, KeyPatternUserCopiesTheKeysItMayRead) {
  RedisServerOptions source_options;
  source_options.acl_lines = {"user app on >pw ~app:* &* -@all +@read +@connection"};
  RedisServerOptions target_options;
  target_options.acl_lines = {"user app on >pw ~app:* &* +@all"};
  auto source = StartServer(source_options);
  auto target = StartServer(target_options);
  ASSERT_TRUE(source && target);
  redis::Connection src = Connect(*source);
  LoadAppKeys(src, 300);
  CliResult r = RunFerry(
      {"migrate", "--from", WithUser(source->uri(), "app"), "--to", WithUser(target->uri(), "app"),
       "--match", "app:*", "--progress", "none", "--output", "json"},
      {{"FERRY_FROM_PASSWORD", "pw"}, {"FERRY_TO_PASSWORD", "pw"}});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  redis::Connection dst = Connect(*target);
  CompareOptions app_keys;
  app_keys.match = "app:*";
  EXPECT_TRUE(SameData(src, 0, dst, 0, app_keys));
  EXPECT_EQ(DbSize(dst), 300);
}

TEST_F(MigratePermissionsTest, KeyPatternRefusalIsNamedAsSuch) {
  RedisServerOptions source_options;
  source_options.acl_lines = {"user other on >pw ~other:* &* -@all +@read +@connection"};
  auto source = StartServer(source_options);
  auto target = StartServer();
  ASSERT_TRUE(source && target);
  redis::Connection src = Connect(*source);
  LoadAppKeys(src, 50);
  CliResult r = RunFerry({"migrate", "--from", WithUser(source->uri(), "other"), "--to",
                          target->uri(), "--match", "app:*", "--progress", "none"},
                         {{"FERRY_FROM_PASSWORD", "pw"}});
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_THAT(r.output, HasSubstr("the source user may not access key 'app:"));
  EXPECT_THAT(r.output, Not(HasSubstr("does not allow")));
  redis::Connection dst = Connect(*target);
  EXPECT_EQ(DbSize(dst), 0);
}

}  // namespace
}  // namespace ferry::testing
