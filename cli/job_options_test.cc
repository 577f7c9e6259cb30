#include "cli/job_options.h"

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/client.h"
#include "cli/migrate.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

class JobOptionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    unsetenv("FERRY_FROM_PASSWORD");
    unsetenv("FERRY_TO_PASSWORD");
  }
  void TearDown() override { SetUp(); }

  // `specs`: ferry submit's by default; LocalFlags(false) for ferry migrate's.
  absl::StatusOr<JobRequest> Request(std::vector<std::string> argv,
                                     const std::vector<FlagSpec>& specs = JobFlags()) {
    absl::StatusOr<Args> args = Args::Parse(argv, specs);
    if (!args.ok()) return args.status();
    warnings_.clear();
    return JobRequestFromArgs(*args, &warnings_);
  }

  std::vector<std::string> warnings_;
};

TEST_F(JobOptionsTest, DefaultsOfAPlainCopy) {
  absl::StatusOr<JobRequest> r = Request({"--from", "redis://src:6379", "--to", "redis://dst"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->source.Address(), "src:6379");
  EXPECT_EQ(r->target.Address(), "dst:6379");
  EXPECT_THAT(r->dbs, IsEmpty());
  EXPECT_FALSE(r->target_db.has_value());
  EXPECT_EQ(r->batch_keys, 1000);
  EXPECT_EQ(r->parallel, 0);  // The controller chooses from the round trips.
  EXPECT_EQ(r->shards, 0);
  EXPECT_EQ(r->rate_limit, 0);
  EXPECT_EQ(r->on_conflict, agent::OnConflict::kReplace);
  EXPECT_FALSE(r->dry_run);
  EXPECT_FALSE(r->merge_dbs);
  EXPECT_FALSE(r->read_from_replicas);
  EXPECT_THAT(warnings_, IsEmpty());
}

TEST_F(JobOptionsTest, EveryOptionLandsInItsField) {
  absl::StatusOr<JobRequest> r =
      Request({"--from",       "redis://src", "--to",          "redis://dst/5",
               "--db",         "0,3",         "--match",       "app:*",
               "--type",       "hash",        "--batch",       "50",
               "--rate-limit", "2.5",         "--shards",      "16",
               "--parallel",   "8",           "--on-conflict", "skip",
               "--read-from",  "replica",     "--dry-run",     "--merge-dbs"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->dbs, ElementsAre(0, 3));
  EXPECT_EQ(r->target_db, 5);
  EXPECT_EQ(r->match, "app:*");
  EXPECT_EQ(r->type, "hash");
  EXPECT_EQ(r->batch_keys, 50);
  EXPECT_DOUBLE_EQ(r->rate_limit, 2.5);
  EXPECT_EQ(r->shards, 16);
  EXPECT_EQ(r->parallel, 8);
  EXPECT_EQ(r->on_conflict, agent::OnConflict::kSkip);
  EXPECT_TRUE(r->read_from_replicas);
  EXPECT_TRUE(r->dry_run);
  EXPECT_TRUE(r->merge_dbs);
}

TEST_F(JobOptionsTest, PasswordsComeFromTheEnvironmentAndAUriPasswordWarns) {
  setenv("FERRY_FROM_PASSWORD", "from-secret", 1);
  absl::StatusOr<JobRequest> r =
      Request({"--from", "redis://src", "--to", "redis://user:to-secret@dst"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->source.password, "from-secret");
  EXPECT_EQ(r->target.password, "to-secret");
  ASSERT_EQ(warnings_.size(), 1u);
  EXPECT_THAT(warnings_[0], HasSubstr("--to"));
  EXPECT_THAT(warnings_[0], HasSubstr("FERRY_TO_PASSWORD"));
  EXPECT_THAT(warnings_[0], Not(HasSubstr("to-secret")));
}

TEST_F(JobOptionsTest, TlsFlagsNeedATlsUriAndInsecureWarns) {
  absl::StatusOr<JobRequest> plain =
      Request({"--from", "redis://src", "--from-cacert", "ca.pem", "--to", "redis://dst"});
  EXPECT_EQ(plain.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(plain.status().message(), HasSubstr("--from-cacert needs a rediss:// URI"));

  absl::StatusOr<JobRequest> tls = Request({"--from", "rediss://src", "--from-cacert", "ca.pem",
                                            "--to", "rediss://dst", "--to-insecure"});
  ASSERT_TRUE(tls.ok()) << tls.status();
  EXPECT_EQ(tls->source.ca_file, "ca.pem");
  EXPECT_TRUE(tls->source.verify_peer);
  EXPECT_FALSE(tls->target.verify_peer);
  ASSERT_EQ(warnings_.size(), 1u);
  EXPECT_THAT(warnings_[0], HasSubstr("--to-insecure"));
}

TEST_F(JobOptionsTest, IamFlagIsTheUriOption) {
  absl::StatusOr<JobRequest> r =
      Request({"--from", "rediss://u@src?region=eu-west-1", "--from-iam", "My-Group", "--to",
               "rediss://w@dst:6380", "--to-iam", "dst"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->source.iam.enabled);
  EXPECT_EQ(r->source.iam.cluster, "my-group");
  EXPECT_EQ(r->source.iam.region, "eu-west-1");
  EXPECT_EQ(r->source.Redacted(), "rediss://u@src:6379?iam=1&cluster=my-group&region=eu-west-1");
  EXPECT_EQ(r->target.Redacted(), "rediss://w@dst:6380?iam=1&cluster=dst");

  absl::StatusOr<JobRequest> both = Request(
      {"--from", "rediss://u@src?iam=1&cluster=a", "--from-iam", "b", "--to", "redis://dst"});
  EXPECT_THAT(both.status().message(), HasSubstr("not both"));
  absl::StatusOr<JobRequest> plain =
      Request({"--from", "redis://u@src", "--from-iam", "a", "--to", "redis://dst"});
  EXPECT_THAT(plain.status().message(), HasSubstr("needs rediss://"));
}

TEST_F(JobOptionsTest, RefusesBadValuesWithoutLeakingPasswords) {
  const std::vector<std::vector<std::string>> bad = {
      {"--to", "redis://dst"},
      {"--from", "redis://src", "--to", "redis://dst", "--on-conflict", "merge"},
      {"--from", "redis://src", "--to", "redis://dst", "--read-from", "any"},
      {"--from", "redis://src", "--to", "redis://dst", "--batch", "0"},
      {"--from", "redis://src", "--to", "redis://dst", "--parallel", "1025"},
      {"--from", "redis://src/1", "--to", "redis://dst", "--db", "2"},
      {"--from", "redis://u:hunter2@src:notaport", "--to", "redis://dst"},
  };
  for (const auto& argv : bad) {
    absl::StatusOr<JobRequest> r = Request(argv);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << argv[1];
    EXPECT_THAT(r.status().message(), Not(HasSubstr("hunter2")));
  }
}

TEST_F(JobOptionsTest, LiveAndItsDirtyBytesReachTheSpec) {
  absl::StatusOr<JobRequest> plain = Request({"--from", "redis://src", "--to", "redis://dst"});
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE(plain->live);
  EXPECT_FALSE(JobSpecFromRequest(*plain).live());
  EXPECT_EQ(JobSpecFromRequest(*plain).live_dirty_bytes(), 0u);

  absl::StatusOr<JobRequest> live =
      Request({"--from", "redis://src", "--to", "redis://dst", "--live"});
  ASSERT_TRUE(live.ok()) << live.status();
  EXPECT_TRUE(live->live);
  EXPECT_EQ(live->live_dirty_bytes, wire::kDefaultLiveDirtyBytes);
  EXPECT_TRUE(JobSpecFromRequest(*live).live());

  absl::StatusOr<JobRequest> sized = Request(
      {"--from", "redis://src", "--to", "redis://dst", "--live", "--live-dirty-bytes", "64MB"});
  ASSERT_TRUE(sized.ok()) << sized.status();
  EXPECT_EQ(sized->live_dirty_bytes, uint64_t{64} << 20);
  EXPECT_EQ(JobSpecFromRequest(*sized).live_dirty_bytes(), uint64_t{64} << 20);
  EXPECT_EQ(JobSpecFromRequest(*sized).kind(), ferry::v1::JOB_KIND_COPY);
}

TEST_F(JobOptionsTest, RefusesLiveCombinationsThatMakeNoSense) {
  const std::vector<std::string> base = {"--from", "redis://src", "--to", "redis://dst"};
  const std::map<std::vector<std::string>, std::string> bad = {
      {{"--live", "--dry-run"}, "--dry-run writes nothing"},
      {{"--live", "--verify-only"}, "drop --live"},
      {{"--live", "--verify"}, "--live with --verify: a live job is verified by its cutover"},
      {{"--live", "--verify-mode", "quick"}, "--live with --verify-mode"},
      {{"--live", "--on-conflict", "skip"}, "--on-conflict skip or fail"},
      {{"--live", "--on-conflict", "fail"}, "--on-conflict skip or fail"},
      {{"--live-dirty-bytes", "1MB"}, "--live-dirty-bytes is for live jobs: add --live"},
      {{"--cutover-verify", "full"}, "--cutover-verify is for live jobs: add --live"},
      {{"--live", "--live-dirty-bytes", "512"}, "--live-dirty-bytes must be at least 1k"},
      {{"--live", "--live-dirty-bytes", "lots"}, "--live-dirty-bytes must be a size"},
  };
  for (const auto& [extra, message] : bad) {
    std::vector<std::string> argv = base;
    argv.insert(argv.end(), extra.begin(), extra.end());
    absl::StatusOr<JobRequest> r = Request(argv, LocalFlags(/*verify=*/false));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << extra[0];
    EXPECT_THAT(r.status().message(), HasSubstr(message)) << extra[0];
  }
  std::vector<std::string> fine = base;
  fine.insert(fine.end(), {"--live", "--on-conflict", "replace", "--cutover-verify", "none"});
  EXPECT_TRUE(Request(fine, LocalFlags(/*verify=*/false)).ok());
}

TEST(CutoverVerifyTest, KnowsQuickFullAndNone) {
  EXPECT_EQ(ParseCutoverVerify("--cutover-verify", "quick").value(), CutoverVerify::kQuick);
  EXPECT_EQ(ParseCutoverVerify("--cutover-verify", "full").value(), CutoverVerify::kFull);
  EXPECT_EQ(ParseCutoverVerify("--cutover-verify", "none").value(), CutoverVerify::kNone);
  const absl::Status bad = ParseCutoverVerify("--verify-mode", "fast").status();
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.message(), "--verify-mode must be quick, full or none, not \"fast\"");
}

absl::StatusOr<ServeRequest> Serve(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args = Args::Parse(argv, LocalFlags(/*verify=*/false));
  if (!args.ok()) return args.status();
  return ServeRequestFromArgs(*args);
}

TEST(ServeRequestTest, ListenWithTheRulesOfTheController) {
  absl::StatusOr<ServeRequest> none = Serve({});
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->listen, "");

  char token_path[] = "/tmp/ferry-token-XXXXXX";
  const int fd = mkstemp(token_path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, " s3cret-token\n", 14), 14);
  close(fd);
  absl::StatusOr<ServeRequest> full =
      Serve({"--listen", "0.0.0.0:7700", "--tls-cert", "c.pem", "--tls-key", "k.pem",
             "--token-file", token_path, "--insecure"});
  unlink(token_path);
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(full->listen, "0.0.0.0:7700");
  EXPECT_EQ(full->tls_cert, "c.pem");
  EXPECT_EQ(full->tls_key, "k.pem");
  EXPECT_EQ(full->token, "s3cret-token");
  EXPECT_TRUE(full->insecure);

  for (const std::string flag : {"--tls-cert", "--tls-key", "--token-file"}) {
    absl::StatusOr<ServeRequest> alone = Serve({flag, "x"});
    EXPECT_EQ(alone.status().code(), absl::StatusCode::kInvalidArgument) << flag;
    EXPECT_THAT(alone.status().message(), HasSubstr(flag + " is for the address --listen serves"));
  }
  EXPECT_THAT(Serve({"--insecure"}).status().message(), HasSubstr("add --listen"));
  EXPECT_THAT(Serve({"--listen", "127.0.0.1:0", "--tls-cert", "c.pem"}).status().message(),
              HasSubstr("both --tls-cert and --tls-key"));
  absl::StatusOr<ServeRequest> missing =
      Serve({"--listen", "127.0.0.1:0", "--token-file", "/nonexistent/token"});
  EXPECT_FALSE(missing.ok());
}

// `ferry migrate --help`, `ferry verify --help` and `ferry submit --help` list each option once;
// the live options only where they apply.
TEST(LocalFlagsTest, EachOptionOnceAndTheLiveOnesWhereTheyApply) {
  const auto names = [](const std::vector<FlagSpec>& specs) {
    std::map<std::string, int> out;
    for (const FlagSpec& f : specs) ++out[f.name];
    return out;
  };
  const std::map<std::string, int> migrate = names(LocalFlags(/*verify=*/false));
  const std::map<std::string, int> verify = names(LocalFlags(/*verify=*/true));
  const std::map<std::string, int> submit = names(JobFlags());
  for (const auto* flags : {&migrate, &verify, &submit}) {
    for (const auto& [name, times] : *flags) EXPECT_EQ(times, 1) << name;
  }
  for (const char* name : {"live", "live-dirty-bytes", "listen", "tls-cert", "tls-key",
                           "token-file", "insecure", "cutover-verify", "help"}) {
    EXPECT_EQ(migrate.count(name), 1u) << name;
  }
  for (const char* name : {"live", "live-dirty-bytes", "listen", "cutover-verify"}) {
    EXPECT_EQ(verify.count(name), 0u) << name;
  }
  EXPECT_EQ(submit.count("live"), 1u);
  EXPECT_EQ(submit.count("live-dirty-bytes"), 1u);
  EXPECT_EQ(submit.count("listen"), 0u);
  EXPECT_EQ(submit.count("cutover-verify"), 0u);
}

TEST(JobDifferencesTest, LiveIsWhatIsCopiedAndItsDirtyBytesATuning) {
  JobRequest request;
  request.source = redis::ParseEndpointUri("redis://a:1").value();
  request.target = redis::ParseEndpointUri("redis://b:2").value();
  JobRequest live = request;
  live.live = true;
  live.live_dirty_bytes = wire::kDefaultLiveDirtyBytes;
  EXPECT_THAT(JobDifferences(JobSpecFromRequest(live), JobSpecFromRequest(request)),
              ElementsAre("has no --live where the job has --live"));
  EXPECT_THAT(JobDifferences(JobSpecFromRequest(live), JobSpecFromRequest(live)), IsEmpty());
  JobRequest smaller = live;
  smaller.live_dirty_bytes = 1 << 20;
  EXPECT_THAT(TuningKeptOnResume(JobSpecFromRequest(live), JobSpecFromRequest(smaller)),
              ElementsAre(absl::StrCat("--live-dirty-bytes ", wire::kDefaultLiveDirtyBytes)));
}

TEST(ExitCodeForTest, FollowsTheDocumentedTable) {
  EXPECT_EQ(ExitCodeFor(absl::OkStatus()), 0);
  EXPECT_EQ(ExitCodeFor(absl::InvalidArgumentError("")), 2);
  EXPECT_EQ(ExitCodeFor(absl::FailedPreconditionError("")), 2);
  EXPECT_EQ(ExitCodeFor(absl::NotFoundError("")), 2);
  EXPECT_EQ(ExitCodeFor(absl::UnavailableError("")), 3);
  EXPECT_EQ(ExitCodeFor(absl::DeadlineExceededError("")), 3);
  EXPECT_EQ(ExitCodeFor(absl::UnauthenticatedError("")), 3);
  EXPECT_EQ(ExitCodeFor(absl::PermissionDeniedError("")), 3);
  EXPECT_EQ(ExitCodeFor(absl::CancelledError("")), 130);
  EXPECT_EQ(ExitCodeFor(absl::InternalError("")), 1);
  EXPECT_EQ(ExitCodeFor(absl::ResourceExhaustedError("")), 1);
  EXPECT_EQ(ExitCodeFor(absl::DataLossError("")), 1);
}

}  // namespace
}  // namespace ferry::cli
