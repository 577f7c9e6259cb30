#include "server/preflight_report.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::server {
namespace {

using ::testing::ElementsAre;

TEST(FindingsTest, AJobStopsAtItsFirstErrorAndFailsWithItsCode) {
  Findings findings(/*collect_all=*/false);
  findings.Warning(check::kTargetKeys, "not empty");
  EXPECT_FALSE(findings.Stop());
  findings.Error(check::kPermissions, absl::PermissionDeniedError("no SET"));
  EXPECT_TRUE(findings.Stop());
  findings.Error(check::kMemory, absl::FailedPreconditionError("too small"));
  EXPECT_EQ(findings.JobStatus(), absl::PermissionDeniedError("no SET"));
  EXPECT_THAT(findings.JobWarnings(), ElementsAre("not empty"));
}

TEST(FindingsTest, PreflightCollectsPastErrors) {
  Findings findings(/*collect_all=*/true);
  findings.Error(check::kConnect, absl::UnavailableError("cannot connect"));
  EXPECT_FALSE(findings.Stop());
  EXPECT_FALSE(findings.Ok(check::kDatabases, absl::InvalidArgumentError("bad db")));
  EXPECT_TRUE(findings.Ok(check::kDatabases, absl::OkStatus()));
  findings.Info(check::kServer, "Redis 7.0");
  ASSERT_EQ(findings.all().size(), 3u);
  EXPECT_EQ(findings.all()[1].check, "databases");
  EXPECT_EQ(findings.all()[1].code, absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SeverityName(findings.all()[2].severity), "info");
}

// A target that would fill up under noeviction: preflight's error, the job's warning.
TEST(FindingsTest, AnErrorTheJobStartsWithIsItsWarning) {
  Findings findings(/*collect_all=*/false);
  findings.ErrorJobStartsWith(check::kMemory, absl::FailedPreconditionError("would stop: OOM"));
  EXPECT_FALSE(findings.Stop());
  EXPECT_TRUE(findings.JobStatus().ok());
  EXPECT_THAT(findings.JobWarnings(), ElementsAre("would stop: OOM"));
  EXPECT_EQ(findings.all()[0].severity, Severity::kError);
}

TEST(FindingsTest, CheckOfAnInspectionError) {
  EXPECT_EQ(CheckOf(absl::UnauthenticatedError("x")), check::kConnect);
  EXPECT_EQ(CheckOf(absl::DeadlineExceededError("x")), check::kConnect);
  EXPECT_EQ(CheckOf(absl::PermissionDeniedError("x")), check::kPermissions);
  EXPECT_EQ(CheckOf(absl::FailedPreconditionError("x")), check::kCluster);
  EXPECT_EQ(CheckOf(absl::InternalError("x")), check::kServer);
}

}  // namespace
}  // namespace ferry::server
