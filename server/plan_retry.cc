#include "server/plan_retry.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/redis/errors.h"

namespace ferry::server {
namespace {

// Waits and durations as people read them: "20ms", "3.2s", "1m5s".
std::string Shown(absl::Duration d) {
  const absl::Duration unit = d < absl::Seconds(1)    ? absl::Milliseconds(1)
                              : d < absl::Seconds(10) ? absl::Milliseconds(100)
                                                      : absl::Seconds(1);
  return absl::FormatDuration(absl::Trunc(std::max(d, absl::ZeroDuration()), unit));
}

}  // namespace

bool IsTransientPlanningError(const absl::Status& error) {
  // The scheduler's rule for shards (transient or redirect) is the planner's too.
  return !error.ok() && redis::MayRetryLater(error.code());
}

PlanRetry::PlanRetry(const PlanRetryPolicy& policy, absl::Time first_start)
    : policy_(policy),
      first_start_(first_start),
      backoff_(policy.initial_backoff, policy.max_backoff) {}

std::optional<absl::Duration> PlanRetry::OnFailure(const absl::Status& error, absl::Time now,
                                                   absl::BitGenRef random) {
  ++attempts_;
  last_transient_ = IsTransientPlanningError(error);
  const absl::Duration left = first_start_ + policy_.budget - now;
  if (!last_transient_ || left <= absl::ZeroDuration()) return std::nullopt;
  return std::min(backoff_.Next(random), left);
}

std::string PlanRetry::WaitingText(const absl::Status& error, absl::Duration wait,
                                   absl::Time now) const {
  const absl::Duration left = first_start_ + policy_.budget - (now + wait);
  return absl::StrCat("planning attempt ", attempts_, " failed: ", error.message(),
                      "; next attempt in ", Shown(wait),
                      left > absl::ZeroDuration()
                          ? absl::StrCat(", retried for ", Shown(left), " more")
                          : ", the last");
}

std::string PlanRetry::GiveUpContext(absl::Time now) const {
  if (!last_transient_ || policy_.budget <= absl::ZeroDuration()) return "";
  return absl::StrCat("after ", attempts_, attempts_ == 1 ? " attempt" : " attempts", " over ",
                      Shown(now - first_start_));
}

}  // namespace ferry::server
