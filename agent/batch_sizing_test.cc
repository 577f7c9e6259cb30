#include "agent/batch_sizing.h"

#include "gtest/gtest.h"

namespace ferry::agent {
namespace {

constexpr uint64_t kMiB = 1 << 20;

TEST(BatchSizeTest, NearTheServersTheConfiguredBatchIsKept) {
  for (absl::Duration rtt : {absl::ZeroDuration(), absl::Microseconds(80), absl::Milliseconds(1)}) {
    const BatchSize size = BatchSizeFor(1000, 2 * kMiB, rtt);
    EXPECT_EQ(size.keys, 1000) << rtt;
    EXPECT_EQ(size.bytes_in_flight, 2 * kMiB) << rtt;
  }
}

TEST(BatchSizeTest, FartherBatchesGrowWithTheRoundTripAndBytesWithThem) {
  const BatchSize ten = BatchSizeFor(1000, 2 * kMiB, absl::Milliseconds(10));
  EXPECT_EQ(ten.keys, 10000);
  EXPECT_EQ(ten.bytes_in_flight, 20 * kMiB);
  const BatchSize two = BatchSizeFor(500, 2 * kMiB, absl::Milliseconds(2));
  EXPECT_EQ(two.keys, 1000);
  EXPECT_EQ(two.bytes_in_flight, 4 * kMiB);
}

TEST(BatchSizeTest, GrowthIsBoundedInKeysAndBytesAndNeverShrinksAGivenBatch) {
  const BatchSize far = BatchSizeFor(1000, 2 * kMiB, absl::Milliseconds(80));
  EXPECT_EQ(far.keys, kMaxBatchKeys);
  EXPECT_EQ(far.bytes_in_flight, 40 * kMiB);
  const BatchSize huge_bytes = BatchSizeFor(100, 32 * kMiB, absl::Milliseconds(40));
  EXPECT_EQ(huge_bytes.keys, 100 * kMaxBatchGrowth);
  EXPECT_EQ(huge_bytes.bytes_in_flight, kMaxBytesInFlight);
  // A batch already above the bound stays as the user set it.
  const BatchSize big = BatchSizeFor(50000, 2 * kMiB, absl::Milliseconds(40));
  EXPECT_EQ(big.keys, 50000);
  EXPECT_EQ(big.bytes_in_flight, 2 * kMiB);
}

}  // namespace
}  // namespace ferry::agent
