#include "agent/hub_stream.h"

#include "gtest/gtest.h"

namespace ferry::agent {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1000);

TEST(AckBookTest, EveryExpectedReportNeedsItsOwnAck) {
  AckBook acks(kStart);
  acks.Expect("a");
  acks.Expect("a");
  acks.Expect("b");
  EXPECT_EQ(acks.pending("a"), 2);
  acks.Ack("a");
  EXPECT_EQ(acks.pending("a"), 1);
  EXPECT_FALSE(acks.empty());
  acks.Ack("a");
  acks.Ack("b");
  EXPECT_TRUE(acks.empty());
}

TEST(AckBookTest, UnexpectedAcksAreIgnored) {
  AckBook acks(kStart);
  acks.Ack("nobody");
  acks.Expect("a");
  acks.Ack("nobody");
  EXPECT_EQ(acks.pending("a"), 1);
  EXPECT_EQ(acks.pending("nobody"), 0);
}

TEST(AckBookTest, ForgettingARevokedLeaseDropsAllItsReports) {
  AckBook acks(kStart);
  acks.Expect("a");
  acks.Expect("a");
  acks.Forget("a");
  EXPECT_TRUE(acks.empty());
}

TEST(AckBookTest, OverdueOnlyWhenAnswersAreOwedAndTheControllerIsSilent) {
  AckBook acks(kStart);
  const absl::Duration timeout = absl::Seconds(30);
  EXPECT_FALSE(acks.Overdue(kStart + absl::Hours(1), timeout));  // Nothing owed.
  acks.Expect("a");
  EXPECT_FALSE(acks.Overdue(kStart + timeout, timeout));
  EXPECT_TRUE(acks.Overdue(kStart + timeout + absl::Milliseconds(1), timeout));
  acks.Received(kStart + absl::Seconds(20));  // Any message counts, a heartbeat answer too.
  EXPECT_FALSE(acks.Overdue(kStart + timeout + absl::Milliseconds(1), timeout));
  EXPECT_EQ(acks.silence(kStart + absl::Seconds(25)), absl::Seconds(5));
}

}  // namespace
}  // namespace ferry::agent
