// `ferry migrate` and its state file, with the real binary between real redis-servers: a state
// file is resumed only by the job it holds (issue 7, case 5), a temporary one leaves no file
// behind, and a finished job's passwords do not stay in the file. Results are compared key by
// key.

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/testing/compare.h"
#include "common/testing/process.h"
#include "common/testing/redis_helpers.h"
#include "common/testing/redis_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/ferry_cli.h"

namespace ferry::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

class MigrateStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RequireRedisServerBinary().ok()) << RequireRedisServerBinary();
    ASSERT_FALSE(dir_.empty());
  }
  void TearDown() override { (void)RemoveTree(dir_); }

  static std::unique_ptr<RedisServer> Start(RedisServerOptions options = {}) {
    auto server = RedisServer::Start(std::move(options));
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? *std::move(server) : nullptr;
  }

  static redis::Connection Connect(const RedisServer& server) {
    auto conn = server.Connect();
    EXPECT_TRUE(conn.ok()) << conn.status();
    return *std::move(conn);
  }

  // The names in `dir`, "." and ".." left out.
  static std::vector<std::string> ListDir(const std::string& dir) {
    std::vector<std::string> names;
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) return {"(cannot open " + dir + ")"};
    while (const dirent* entry = readdir(d)) {
      const std::string name = entry->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    closedir(d);
    return names;
  }

  const std::string dir_ = MakeTempDir("ferry-state-");
};

std::vector<std::string> MigrateArgs(const RedisServer& from, const RedisServer& to,
                                     const std::string& state,
                                     const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {"migrate", "--from",   from.uri(), "--to", to.uri(),
                                   "--state", state,      "--batch",  "200",  "--progress",
                                   "none",    "--output", "json"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

TEST_F(MigrateStateTest, AStateFileResumesOnlyTheJobItHolds) {
  std::unique_ptr<RedisServer> source = Start();
  std::unique_ptr<RedisServer> target = Start();
  std::unique_ptr<RedisServer> other = Start();
  ASSERT_TRUE(source && target && other);
  redis::Connection src = Connect(*source);
  ASSERT_TRUE(LoadMixedData(src, 0, 20000, 11, 0.2).ok());
  const std::string state = dir_ + "/s.db";

  // Interrupted mid-copy: slow enough (--rate-limit) that SIGINT lands well before the end.
  auto first = StartFerry(MigrateArgs(*source, *target, state, {"--rate-limit", "4000"}),
                          dir_ + "/first.log");
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(WaitFor([&] { return DbSize(*target) > 2000; }, absl::Seconds(30)).ok())
      << ReadFile(dir_ + "/first.log");
  ASSERT_TRUE(first->Signal(SIGINT).ok());
  auto code = first->Wait(absl::Seconds(30));
  ASSERT_TRUE(code.ok()) << code.status();
  ASSERT_EQ(*code, 130) << ReadFile(dir_ + "/first.log");
  const int64_t copied_before = DbSize(*target);
  ASSERT_LT(copied_before, 20000);

  // Another target, through a URI with a password: refused, with what differs, and no password.
  const std::string other_uri = absl::StrCat("redis://:not-shown-4c1d@127.0.0.1:", other->port());
  std::vector<std::string> to_other = MigrateArgs(*source, *target, state);
  to_other[4] = other_uri;
  CliResult refused = RunFerry(to_other);
  EXPECT_EQ(refused.exit_code, 2) << refused.output;
  EXPECT_THAT(
      refused.output,
      HasSubstr(absl::StrCat("--state ", state, " holds an unfinished job from ", source->uri(),
                             " to ", target->uri(), "; this command copies to ", other->uri(),
                             ": use another --state file, or the same options to resume")));
  EXPECT_THAT(refused.output, Not(HasSubstr("not-shown-4c1d")));
  EXPECT_THAT(refused.output, Not(HasSubstr("resuming job")));
  EXPECT_EQ(DbSize(*other), 0);

  // Another --match, and another source: refused alike.
  CliResult match = RunFerry(MigrateArgs(*source, *target, state, {"--match", "mixed:11:1*"}));
  EXPECT_EQ(match.exit_code, 2) << match.output;
  EXPECT_THAT(match.output, HasSubstr("has --match \"mixed:11:1*\" where the job has no --match"));
  CliResult from_other = RunFerry(MigrateArgs(*other, *target, state));
  EXPECT_EQ(from_other.exit_code, 2) << from_other.output;
  EXPECT_THAT(from_other.output,
              HasSubstr(absl::StrCat("this command copies from ", other->uri())));
  EXPECT_EQ(DbSize(*target), copied_before);
  EXPECT_EQ(DbSize(*other), 0);

  // The same command (another --parallel is only tuning) resumes and finishes the first job.
  CliResult resumed = RunFerry(MigrateArgs(*source, *target, state, {"--parallel", "2"}));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_THAT(resumed.output, HasSubstr("resuming job"));
  EXPECT_THAT(resumed.output, HasSubstr("keeps the options it was started with"));
  redis::Connection dst = Connect(*target);
  EXPECT_TRUE(SameData(src, dst));
  EXPECT_EQ(DbSize(*other), 0);
}

TEST_F(MigrateStateTest, WithoutStateNoFileIsLeftInTheTemporaryFolder) {
  std::unique_ptr<RedisServer> source = Start();
  std::unique_ptr<RedisServer> target = Start();
  ASSERT_TRUE(source && target);
  redis::Connection src = Connect(*source);
  ASSERT_TRUE(LoadMixedData(src, 0, 3000, 12, 0.2).ok());
  const std::string tmp = dir_ + "/tmp";
  ASSERT_EQ(mkdir(tmp.c_str(), 0700), 0);
  CliResult r = RunFerry({"migrate", "--from", source->uri(), "--to", target->uri(), "--progress",
                          "none", "--output", "json"},
                         {{"TMPDIR", tmp}});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  redis::Connection dst = Connect(*target);
  EXPECT_TRUE(SameData(src, dst));
  EXPECT_THAT(ListDir(tmp), IsEmpty()) << absl::StrJoin(ListDir(tmp), " ");
}

TEST_F(MigrateStateTest, AFinishedJobLeavesNoPasswordInTheStateFile) {
  const std::string source_password = "src-pass-6d2e91ab";
  const std::string target_password = "dst-pass-0f7c33de";
  RedisServerOptions source_options;
  source_options.requirepass = source_password;
  RedisServerOptions target_options;
  target_options.requirepass = target_password;
  std::unique_ptr<RedisServer> source = Start(source_options);
  std::unique_ptr<RedisServer> target = Start(target_options);
  ASSERT_TRUE(source && target);
  redis::Connection src = Connect(*source);
  ASSERT_TRUE(LoadMixedData(src, 0, 5000, 13, 0.2).ok());
  const std::string state = dir_ + "/done.db";
  CliResult r =
      RunFerry(MigrateArgs(*source, *target, state),
               {{"FERRY_FROM_PASSWORD", source_password}, {"FERRY_TO_PASSWORD", target_password}});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  redis::Connection dst = Connect(*target);
  EXPECT_TRUE(SameData(src, dst));

  const std::string bytes = ReadFile(state);
  ASSERT_FALSE(bytes.empty());
  const std::string wal = ReadFile(state + "-wal");  // Empty when SQLite removed it.
  for (const std::string& password : {source_password, target_password}) {
    EXPECT_EQ(bytes.find(password), std::string::npos) << password << " is in " << state;
    EXPECT_EQ(wal.find(password), std::string::npos) << password << " is in " << state << "-wal";
  }
  // The file still holds the finished job.
  CliResult again =
      RunFerry(MigrateArgs(*source, *target, state),
               {{"FERRY_FROM_PASSWORD", source_password}, {"FERRY_TO_PASSWORD", target_password}});
  EXPECT_EQ(again.exit_code, 0) << again.output;
  EXPECT_THAT(again.output, Not(HasSubstr("resuming job")));
  EXPECT_EQ(ReadFile(state).find(source_password), std::string::npos);
}

}  // namespace
}  // namespace ferry::testing
