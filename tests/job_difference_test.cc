// JobDifferences: when `ferry migrate --state FILE` may resume the job stored in FILE, and what
// it says when it may not. No processes: specs in, phrases out.

#include <string>
#include <vector>

#include "cli/client.h"
#include "cli/job_options.h"
#include "cli/migrate.h"
#include "common/redis/endpoint.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

redis::Endpoint Endpoint(const std::string& uri, const std::string& password = "") {
  absl::StatusOr<redis::Endpoint> endpoint = redis::ParseEndpointUri(uri, password);
  EXPECT_TRUE(endpoint.ok()) << endpoint.status();
  return endpoint.value_or(redis::Endpoint());
}

JobRequest Request(const std::string& from = "redis://a:1", const std::string& to = "redis://b:2") {
  JobRequest r;
  r.source = Endpoint(from, "src-secret");
  r.target = Endpoint(to, "dst-secret");
  r.target_db = r.target.db;
  return r;
}

// As the controller answers it: the spec it stored, passwords cleared.
ferry::v1::JobSpec Stored(const JobRequest& r) {
  ferry::v1::JobSpec spec = JobSpecFromRequest(r);
  spec.mutable_source()->clear_password();
  spec.mutable_target()->clear_password();
  return spec;
}

std::vector<std::string> Differences(const JobRequest& stored, const JobRequest& requested) {
  return JobDifferences(Stored(stored), JobSpecFromRequest(requested));
}

TEST(JobDifferencesTest, TheSameCommandResumes) {
  EXPECT_THAT(Differences(Request(), Request()), IsEmpty());
}

TEST(JobDifferencesTest, TuningAndLoginMayChange) {
  JobRequest requested = Request("redis://reader@A:1", "rediss://b:2");
  requested.source.password = "another-password";
  requested.parallel = 16;
  requested.batch_keys = 50;
  requested.rate_limit = 100;
  EXPECT_THAT(Differences(Request(), requested), IsEmpty());
  // The stored job's tuning stays in force; the caller says so.
  EXPECT_THAT(TuningKeptOnResume(Stored(Request()), JobSpecFromRequest(requested)),
              ElementsAre("--parallel 4", "--batch 1000", "no --rate-limit"));
}

TEST(JobDifferencesTest, SourceDatabaseFromTheUriOrFromDbIsTheSame) {
  JobRequest by_uri = Request("redis://a:1/3");
  JobRequest by_flag = Request();
  by_flag.dbs = {3};
  EXPECT_THAT(Differences(by_uri, by_flag), IsEmpty());
  JobRequest reordered = Request();
  reordered.dbs = {3, 0};
  JobRequest sorted = Request();
  sorted.dbs = {0, 3};
  EXPECT_THAT(Differences(sorted, reordered), IsEmpty());
}

TEST(JobDifferencesTest, EndpointsAreNamedWithoutPasswords) {
  EXPECT_THAT(Differences(Request(), Request("redis://a:1", "redis://c:3")),
              ElementsAre("copies to redis://c:3"));
  EXPECT_THAT(Differences(Request(), Request("redis://user:pw-in-uri@x:9")),
              ElementsAre("copies from redis://user@x:9"));
  EXPECT_THAT(Differences(Request(), Request("redis://a:1", "redis://b:2/5")),
              ElementsAre("copies to redis://b:2/5"));
  for (const std::string& d :
       Differences(Request(), Request("redis://:pw-in-uri@x:9", "redis://:pw2@y:8"))) {
    EXPECT_THAT(d, Not(HasSubstr("pw"))) << d;
    EXPECT_THAT(d, Not(HasSubstr("secret"))) << d;
  }
}

TEST(JobDifferencesTest, EveryOptionThatChangesWhatIsCopiedIsNamed) {
  JobRequest requested = Request();
  requested.dbs = {0, 2};
  requested.match = "user:*";
  requested.type = "hash";
  requested.merge_dbs = true;
  requested.on_conflict = agent::OnConflict::kSkip;
  requested.dry_run = true;
  requested.read_from_replicas = true;
  requested.shards = 8;
  EXPECT_THAT(Differences(Request(), requested),
              ElementsAre("copies databases 0,2 where the job copies every non-empty database",
                          "has --match \"user:*\" where the job has no --match",
                          "has --type hash where the job has no --type",
                          "has --merge-dbs where the job has no --merge-dbs",
                          "has --on-conflict skip where the job has --on-conflict replace",
                          "has --dry-run where the job has no --dry-run",
                          "has --read-from replica where the job has --read-from primary",
                          "has --shards 8 where the job has no --shards"));
  // And the other way round.
  EXPECT_THAT(Differences(requested, Request()),
              ElementsAre("copies every non-empty database where the job copies databases 0,2",
                          "has no --match where the job has --match \"user:*\"",
                          "has no --type where the job has --type hash",
                          "has no --merge-dbs where the job has --merge-dbs",
                          "has --on-conflict replace where the job has --on-conflict skip",
                          "has no --dry-run where the job has --dry-run",
                          "has --read-from primary where the job has --read-from replica",
                          "has no --shards where the job has --shards 8"));
}

}  // namespace
}  // namespace ferry::cli
