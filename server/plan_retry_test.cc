#include "server/plan_retry.h"

#include "absl/random/random.h"
#include "common/redis/errors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Optional;

TEST(PlanRetryTest, BusyRepliesAndLostServersAreTransient) {
  for (const char* reply :
       {"LOADING Redis is loading the dataset in memory", "BUSY Redis is busy running a script",
        "TRYAGAIN Multiple keys request during rehashing of slot",
        "CLUSTERDOWN The cluster is down", "MASTERDOWN Link with MASTER is down",
        "READONLY You can't write against a read only replica", "MOVED 3999 127.0.0.1:6381"}) {
    EXPECT_TRUE(IsTransientPlanningError(redis::StatusFromReplyError(reply))) << reply;
  }
  EXPECT_TRUE(IsTransientPlanningError(absl::UnavailableError("cannot connect: refused")));
  EXPECT_TRUE(IsTransientPlanningError(absl::DeadlineExceededError("no reply within 5s")));
  EXPECT_TRUE(IsTransientPlanningError(absl::AbortedError("MOVED")));
}

TEST(PlanRetryTest, WhatNeedsSomeoneToActIsPermanent) {
  for (const char* reply :
       {"WRONGPASS invalid username-password pair or user is disabled.",
        "NOAUTH Authentication required.", "NOPERM this user has no permissions to run the 'scan'",
        "OOM command not allowed when used memory > 'maxmemory'.", "ERR syntax error"}) {
    EXPECT_FALSE(IsTransientPlanningError(redis::StatusFromReplyError(reply))) << reply;
  }
  for (const absl::Status& status :
       {absl::FailedPreconditionError("the target is not empty"),
        absl::InvalidArgumentError("bad --match"), absl::NotFoundError("no such database"),
        absl::ResourceExhaustedError("does not fit"), absl::InternalError("TLS"),
        absl::OkStatus()}) {
    EXPECT_FALSE(IsTransientPlanningError(status)) << status;
  }
}

TEST(PlanRetryTest, PermanentErrorFailsAtOnceWithItsOwnMessage) {
  absl::BitGen random;
  const absl::Time start = absl::UnixEpoch();
  PlanRetry retry(PlanRetryPolicy{}, start);
  EXPECT_EQ(
      retry.OnFailure(absl::UnauthenticatedError("WRONGPASS"), start + absl::Seconds(1), random),
      std::nullopt);
  EXPECT_EQ(retry.attempts(), 1);
  EXPECT_EQ(retry.GiveUpContext(start + absl::Seconds(1)), "");
}

TEST(PlanRetryTest, TransientErrorsBackOffUntilTheBudgetThenGiveUp) {
  absl::BitGen random;
  const absl::Time start = absl::UnixEpoch();
  PlanRetryPolicy policy;
  policy.budget = absl::Seconds(20);
  policy.initial_backoff = absl::Seconds(1);
  policy.max_backoff = absl::Seconds(8);
  PlanRetry retry(policy, start);
  const absl::Status refused = absl::UnavailableError("cannot connect to 127.0.0.1:1: refused");
  absl::Time now = start;
  absl::Duration full = absl::Seconds(1);
  int attempts = 0;
  while (true) {
    now += absl::Milliseconds(10);  // The attempt.
    const std::optional<absl::Duration> wait = retry.OnFailure(refused, now, random);
    ++attempts;
    if (!wait.has_value()) break;
    // Jittered down by at most 20%, doubling, capped, and never past the budget.
    EXPECT_LE(*wait, full);
    EXPECT_GE(*wait, std::min(full * 0.8, start + policy.budget - now));
    EXPECT_LE(now + *wait, start + policy.budget);
    full = std::min(full * 2, policy.max_backoff);
    now += *wait;
    ASSERT_LT(attempts, 20);
  }
  EXPECT_GE(now, start + policy.budget);  // The last attempt began at the budget.
  EXPECT_GE(attempts, 5);
  EXPECT_EQ(retry.attempts(), attempts);
  EXPECT_EQ(retry.GiveUpContext(now),
            absl::StrCat("after ", attempts, " attempts over ",
                         absl::FormatDuration(absl::Trunc(now - start, absl::Seconds(1)))));
}

TEST(PlanRetryTest, WaitingTextSaysTheAttemptTheErrorAndTheNextAttempt) {
  absl::BitGen random;
  const absl::Time start = absl::UnixEpoch();
  PlanRetry retry(PlanRetryPolicy{}, start);
  const absl::Status loading = redis::StatusFromReplyError("LOADING Redis is loading");
  ASSERT_THAT(retry.OnFailure(loading, start, random), Optional(::testing::_));
  EXPECT_EQ(retry.WaitingText(loading, absl::Milliseconds(900), start),
            "planning attempt 1 failed: LOADING Redis is loading; next attempt in 900ms, retried "
            "for 59s more");
  EXPECT_THAT(retry.WaitingText(loading, absl::Seconds(60), start), HasSubstr("the last"));
}

TEST(PlanRetryTest, NoBudgetFailsTheFirstTransientErrorAsBefore) {
  absl::BitGen random;
  const absl::Time start = absl::UnixEpoch();
  PlanRetryPolicy policy;
  policy.budget = absl::ZeroDuration();
  PlanRetry retry(policy, start);
  EXPECT_EQ(retry.OnFailure(absl::UnavailableError("refused"), start, random), std::nullopt);
  EXPECT_EQ(retry.GiveUpContext(start), "");
}

}  // namespace
}  // namespace ferry::server
