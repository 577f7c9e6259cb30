// `ferry migrate` against servers that restrict access the way managed services do: TLS,
// ACL users, passwords, disabled commands, and a source that dies mid-copy.

#include <csignal>

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

class MigrateAccessTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(RequireRedisServerBinary().ok()); }
};

TEST_F(MigrateAccessTest, TlsSourceWithGeneratedCaAndWrongCaRefused) {
  RedisServerOptions tls;
  tls.tls = true;
  auto source = StartServer(tls);
  auto target = StartServer();
  ASSERT_TRUE(source && target);
  redis::Connection src = Connect(*source);
  ASSERT_TRUE(LoadMixedData(src, 0, 2000, 4, 0.2).ok());

  const std::string dir = MakeTempDir("ferry-wrong-ca-");
  auto wrong_ca = GenerateUnrelatedCa(dir);
  ASSERT_TRUE(wrong_ca.ok()) << wrong_ca.status();
  CliResult refused = RunFerry({"migrate", "--from", source->uri(), "--from-cacert", *wrong_ca,
                                "--to", target->uri(), "--progress", "none"});
  EXPECT_EQ(refused.exit_code, 3) << refused.output;
  EXPECT_THAT(refused.output, HasSubstr("certificate"));
  redis::Connection dst = Connect(*target);
  EXPECT_EQ(dst.Command({"DBSIZE"})->integer(), 0);

  CliResult ok = RunFerry({"migrate", "--from", source->uri(), "--from-cacert", source->ca_file(),
                           "--to", target->uri(), "--progress", "none"});
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_TRUE(SameData(src, dst));

  CliResult insecure = RunFerry({"migrate", "--from", source->uri(), "--from-insecure", "--to",
                                 target->uri(), "--progress", "none"});
  EXPECT_EQ(insecure.exit_code, 0) << insecure.output;
  EXPECT_THAT(insecure.output, HasSubstr("not checked"));
  (void)RemoveTree(dir);
}

TEST_F(MigrateAccessTest, ReadOnlyAclSourceUserAndPasswordTarget) {
  RedisServerOptions source_options;
  source_options.requirepass = "admin-pw";
  // As on ElastiCache: everything readable, nothing else (not even INFO or CONFIG).
  source_options.acl_lines = {"user reader on >reader-s3cret ~* &* -@all +@read +@connection"};
  RedisServerOptions target_options;
  target_options.requirepass = "target-s3cret";
  auto source = StartServer(source_options);
  auto target = StartServer(target_options);
  ASSERT_TRUE(source && target);
  redis::Connection src = Connect(*source);
  ASSERT_TRUE(LoadMixedData(src, 0, 3000, 8, 0.2).ok());
  redis::Connection src2 = *source->Connect(2);
  ASSERT_TRUE(LoadMixedData(src2, 2, 500, 9, 0).ok());

  const std::vector<std::pair<std::string, std::string>> env = {
      {"FERRY_FROM_PASSWORD", "reader-s3cret"}, {"FERRY_TO_PASSWORD", "target-s3cret"}};
  CliResult r = RunFerry({"migrate", "--from", WithUser(source->uri(), "reader"), "--to",
                          target->uri(), "--progress", "log", "--output", "json"},
                         env);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, Not(HasSubstr("s3cret")));
  redis::Connection dst = Connect(*target);
  EXPECT_TRUE(SameData(src, dst));
  redis::Connection dst2 = *target->Connect(2);
  EXPECT_TRUE(SameData(src2, 2, dst2, 2));

  // A wrong target password: exit 3, and the password is not echoed.
  CliResult wrong =
      RunFerry({"migrate", "--from", WithUser(source->uri(), "reader"), "--to", target->uri(),
                "--progress", "none"},
               {{"FERRY_FROM_PASSWORD", "reader-s3cret"}, {"FERRY_TO_PASSWORD", "wrong-s3cret"}});
  EXPECT_EQ(wrong.exit_code, 3) << wrong.output;
  EXPECT_THAT(wrong.output, HasSubstr("cannot log in"));
  EXPECT_THAT(wrong.output, Not(HasSubstr("s3cret")));

  // A password inside the URI works, with a warning, and is never printed.
  CliResult in_uri = RunFerry(
      {"migrate", "--from", absl::StrCat("redis://reader:reader-s3cret@127.0.0.1:", source->port()),
       "--to", target->uri(), "--progress", "log"},
      {{"FERRY_TO_PASSWORD", "target-s3cret"}});
  EXPECT_EQ(in_uri.exit_code, 0) << in_uri.output;
  EXPECT_THAT(in_uri.output, HasSubstr("FERRY_FROM_PASSWORD"));
  EXPECT_THAT(in_uri.output, Not(HasSubstr("s3cret")));
}

TEST_F(MigrateAccessTest, SourceUserWithoutDumpIsRefusedBeforeAnyWrite) {
  RedisServerOptions source_options;
  source_options.acl_lines = {"user nodump on >pw ~* &* -@all +@read +@connection -dump"};
  auto source = StartServer(source_options);
  auto target = StartServer();
  ASSERT_TRUE(source && target);
  redis::Connection src = Connect(*source);
  ASSERT_TRUE(src.Command({"SET", "k", "v"}).ok());
  CliResult r = RunFerry({"migrate", "--from", WithUser(source->uri(), "nodump"), "--to",
                          target->uri(), "--progress", "none"},
                         {{"FERRY_FROM_PASSWORD", "pw"}});
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_THAT(r.output, HasSubstr("does not allow DUMP"));
}

TEST_F(MigrateAccessTest, SourceKilledDuringTheCopy) {
  auto source = StartServer();
  auto target = StartServer();
  ASSERT_TRUE(source && target);
  redis::Connection src = Connect(*source);
  ASSERT_TRUE(LoadMixedData(src, 0, 30000, 6, 0).ok());
  const ScopedTempDir scratch("ferry-kill-");
  const std::string log = scratch.path() + "/out.log";
  auto ferry = StartFerry({"migrate", "--from", source->uri(), "--to", target->uri(),
                           "--rate-limit", "3000", "--progress", "log"},
                          log);
  ASSERT_TRUE(ferry.ok());
  redis::Connection dst = Connect(*target);
  ASSERT_TRUE(
      WaitFor([&] { return dst.Command({"DBSIZE"})->integer() > 1000; }, absl::Seconds(30)).ok());
  source->Kill();
  auto code = ferry->Wait(absl::Minutes(2));
  ASSERT_TRUE(code.ok()) << code.status();
  const std::string output = ReadFile(log);
  EXPECT_EQ(*code, 3) << output;
  EXPECT_THAT(output, HasSubstr(absl::StrCat("127.0.0.1:", source->port())));
  EXPECT_THAT(output, HasSubstr("failed"));
}

}  // namespace
}  // namespace ferry::testing
