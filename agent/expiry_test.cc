#include "agent/expiry.h"

#include "gtest/gtest.h"

namespace ferry::agent {
namespace {

TEST(LocalExpiryTest, PttlCountsFromWhenItWasSent) {
  const absl::Time sent = absl::FromUnixMillis(1'000'000);
  EXPECT_EQ(LocalExpiry(5000, std::nullopt, sent), 1'005'000);
  EXPECT_EQ(LocalExpiry(-1, std::nullopt, sent), kNoExpiry);
  EXPECT_EQ(LocalExpiry(-2, std::nullopt, sent), kVanished);
}

TEST(LocalExpiryTest, PexpiretimeMovesIntoThisHostsClockAtTheEarliest) {
  // The source's clock runs at most 250 ms ahead of ours: its expiry at 2,000,000 is no earlier
  // than 1,999,750 here, however long the reply took.
  const SourceClock clock = SourceClock::WithMaxOffset(250);
  const absl::Time long_ago = absl::FromUnixMillis(1);
  EXPECT_EQ(LocalExpiry(2'000'000, clock, long_ago), 1'999'750);
  EXPECT_EQ(LocalExpiry(-1, clock, long_ago), kNoExpiry);
  EXPECT_EQ(LocalExpiry(-2, clock, long_ago), kVanished);
  // A source clock behind ours moves the expiry later by exactly that bound.
  EXPECT_EQ(LocalExpiry(2'000'000, SourceClock::WithMaxOffset(-100), long_ago), 2'000'100);
}

TEST(ExpiryMapperTest, AbsoluteTimesAddTheTargetsOffsetAndDropExpiredKeys) {
  const ExpiryMapper mapper = ExpiryMapper::Absolute(/*offset_ms=*/-40);
  const int64_t now = absl::ToUnixMillis(absl::Now());
  EXPECT_EQ(mapper.RestoreTtl(now + 60'000), now + 60'000 - 40);
  EXPECT_FALSE(mapper.RestoreTtl(now - 1).has_value());
  auto set = mapper.SetExpiry(now + 60'000);
  ASSERT_TRUE(set.has_value());
  EXPECT_EQ(set->first, "PXAT");
  EXPECT_EQ(set->second, now + 60'000 - 40);
}

TEST(ExpiryMapperTest, RelativeTtlsNeverOutliveTheSource) {
  ExpiryMapper mapper;  // A target without ABSTTL.
  mapper.set_relative_margin(absl::Milliseconds(30));
  const int64_t before = absl::ToUnixMillis(absl::Now());
  std::optional<int64_t> ttl = mapper.RestoreTtl(before + 10'000);
  ASSERT_TRUE(ttl.has_value());
  // Applied on the target no earlier than now: the key expires before the source's moment.
  EXPECT_LE(*ttl, 10'000 - 30 - 1);
  EXPECT_GT(*ttl, 9'000);
  auto set = mapper.SetExpiry(before + 10'000);
  ASSERT_TRUE(set.has_value());
  EXPECT_EQ(set->first, "PX");
  EXPECT_FALSE(mapper.RestoreTtl(before + 10).has_value());  // Within the margin: expired.
}

TEST(ExpiryMapperTest, EarliestOfTwoNodesTakesTheLowerOffset) {
  const ExpiryMapper both =
      ExpiryMapper::Earliest(ExpiryMapper::Absolute(10), ExpiryMapper::Absolute(-5));
  const int64_t now = absl::ToUnixMillis(absl::Now());
  EXPECT_EQ(both.RestoreTtl(now + 1000), now + 1000 - 5);
  const ExpiryMapper mixed = ExpiryMapper::Earliest(ExpiryMapper::Absolute(0), ExpiryMapper());
  EXPECT_FALSE(mixed.absolute());
}

}  // namespace
}  // namespace ferry::agent
