#include "common/base/backoff.h"

#include <algorithm>

#include "absl/random/random.h"
#include "gtest/gtest.h"

namespace ferry {
namespace {

TEST(BackoffTest, WaitsAreJitteredDownwardAndDoubleUpToTheCap) {
  absl::BitGen random;
  Backoff backoff(absl::Milliseconds(250), absl::Seconds(1));
  const absl::Duration expected[] = {absl::Milliseconds(250), absl::Milliseconds(500),
                                     absl::Seconds(1), absl::Seconds(1)};
  for (absl::Duration full : expected) {
    EXPECT_EQ(backoff.current(), full);
    const absl::Duration wait = backoff.Next(random);
    EXPECT_GE(wait, full * 0.8);
    EXPECT_LE(wait, full);
  }
}

TEST(BackoffTest, ResetStartsAgainFromTheInitialWait) {
  absl::BitGen random;
  Backoff backoff(absl::Milliseconds(250), absl::Seconds(10));
  for (int i = 0; i < 5; ++i) backoff.Next(random);
  EXPECT_EQ(backoff.current(), absl::Seconds(8));
  backoff.Reset();
  EXPECT_EQ(backoff.current(), absl::Milliseconds(250));
  EXPECT_LE(backoff.Next(random), absl::Milliseconds(250));
}

TEST(BackoffTest, JitterSpreadsAFleet) {
  absl::BitGen random;
  absl::Duration low = absl::InfiniteDuration(), high = absl::ZeroDuration();
  for (int i = 0; i < 200; ++i) {
    Backoff backoff(absl::Seconds(1), absl::Seconds(1));
    const absl::Duration wait = backoff.Next(random);
    low = std::min(low, wait);
    high = std::max(high, wait);
  }
  EXPECT_GT(high - low, absl::Milliseconds(100));
}

}  // namespace
}  // namespace ferry
