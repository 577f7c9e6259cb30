#include "cli/job_options.h"

#include <stdlib.h>

#include <string>
#include <vector>

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

  absl::StatusOr<JobRequest> Request(std::vector<std::string> argv) {
    absl::StatusOr<Args> args = Args::Parse(argv, JobFlags());
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
  EXPECT_EQ(r->parallel, 4);
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
