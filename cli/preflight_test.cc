#include "cli/preflight.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::cli {
namespace {

using server::Finding;
using server::Severity;
using ::testing::HasSubstr;
using ::testing::Not;

Finding Error(absl::StatusCode code, const std::string& check, const std::string& message) {
  return {Severity::kError, check, message, code};
}
Finding Warning(const std::string& check, const std::string& message) {
  return {Severity::kWarning, check, message};
}
Finding Info(const std::string& check, const std::string& message) {
  return {Severity::kInfo, check, message};
}

TEST(PreflightExitCodeTest, NothingOrInfoIsZero) {
  EXPECT_EQ(PreflightExitCode({}, /*strict=*/true), 0);
  EXPECT_EQ(PreflightExitCode({Info("server", "source: Redis 7.0")}, /*strict=*/true), 0);
}

TEST(PreflightExitCodeTest, WarningsAreZeroUnlessStrict) {
  const std::vector<Finding> findings = {Warning("target-keys", "not empty")};
  EXPECT_EQ(PreflightExitCode(findings, /*strict=*/false), 0);
  EXPECT_EQ(PreflightExitCode(findings, /*strict=*/true), 1);
}

TEST(PreflightExitCodeTest, ErrorsAreTwoAndConnectionOrPermissionThree) {
  const Finding memory =
      Error(absl::StatusCode::kFailedPrecondition, "memory", "too small, allkeys-lru");
  EXPECT_EQ(PreflightExitCode({Warning("x", "y"), memory}, /*strict=*/true), 2);
  for (absl::StatusCode code :
       {absl::StatusCode::kUnavailable, absl::StatusCode::kUnauthenticated,
        absl::StatusCode::kPermissionDenied, absl::StatusCode::kDeadlineExceeded}) {
    EXPECT_EQ(PreflightExitCode({memory, Error(code, "connect", "no")}, false), 3) << code;
  }
  // A job that would start and stop with OOM is an error of preflight all the same.
  Finding oom = memory;
  oom.job_starts = true;
  EXPECT_EQ(PreflightExitCode({oom}, false), 2);
}

server::PreflightReport Report() {
  server::PreflightReport report;
  report.findings = {
      Info("server", "source: Redis 7.0 (redis_version 7.0.15), standalone, 3 keys"),
      Warning("target-keys", "the target is not empty (2 keys); existing keys may be overwritten"),
      Error(absl::StatusCode::kFailedPrecondition, "memory",
            "the source's dataset \"big\"\nis more than the target's maxmemory"),
  };
  report.source_keys = 3;
  report.shards = 1;
  return report;
}

TEST(FormatPreflightTest, TextHasOneLinePerFindingAndTheVerdict) {
  const std::string text =
      FormatPreflightText(Report(), "redis://a:6379", "redis://b:6380", /*exit_code=*/2);
  EXPECT_THAT(text, HasSubstr("ferry preflight: redis://a:6379 -> redis://b:6380\n"));
  EXPECT_THAT(text, HasSubstr("info    [server] source: Redis 7.0"));
  EXPECT_THAT(text, HasSubstr("warning [target-keys] the target is not empty (2 keys)"));
  EXPECT_THAT(text, HasSubstr("error   [memory] the source's dataset"));
  EXPECT_THAT(text, HasSubstr("preflight: 1 error, 1 warning: the job would not start, or "
                              "would stop part way (exit 2)\n"));
}

TEST(FormatPreflightTest, TextSaysWhatEachExitCodeMeans) {
  server::PreflightReport empty;
  EXPECT_THAT(FormatPreflightText(empty, "a", "b", 0),
              HasSubstr("0 errors, 0 warnings: the job would start (exit 0)"));
  EXPECT_THAT(FormatPreflightText(empty, "a", "b", 1), HasSubstr("with warnings (--strict)"));
  EXPECT_THAT(FormatPreflightText(empty, "a", "b", 3), HasSubstr("cannot connect"));
}

TEST(FormatPreflightTest, JsonIsOneObjectOnOneLine) {
  const std::string json = FormatPreflightJson(Report(), 2);
  EXPECT_THAT(json, Not(HasSubstr("\n")));
  EXPECT_EQ(json.front(), '{');
  EXPECT_THAT(json, HasSubstr("{\"findings\":[{\"severity\":\"info\",\"check\":\"server\","
                              "\"message\":\"source: Redis 7.0"));
  EXPECT_THAT(json, HasSubstr("{\"severity\":\"warning\",\"check\":\"target-keys\""));
  // Quotes and newlines of a message are escaped.
  EXPECT_THAT(json, HasSubstr("\"message\":\"the source's dataset \\\"big\\\"\\nis more"));
  EXPECT_THAT(json, HasSubstr("\"summary\":{\"errors\":1,\"warnings\":1,\"info\":1,"
                              "\"source_keys\":3,\"shards\":1,\"exit_code\":2}}"));
}

TEST(PreflightFlagsTest, JobFlagsWithoutVerificationPlusItsOwn) {
  std::vector<std::string> names;
  for (const FlagSpec& flag : PreflightFlags()) names.push_back(flag.name);
  for (const char* kept : {"from", "to", "db", "match", "type", "copy-path", "big-key-bytes",
                           "live", "merge-dbs", "read-from", "probe-key", "strict", "output"}) {
    EXPECT_THAT(names, ::testing::Contains(kept));
  }
  for (const char* dropped : {"verify", "verify-only", "verify-mode"}) {
    EXPECT_THAT(names, Not(::testing::Contains(dropped)));
  }
}

}  // namespace
}  // namespace ferry::cli
