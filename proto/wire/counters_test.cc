#include "proto/wire/counters.h"

#include "gtest/gtest.h"

namespace ferry::wire {
namespace {

TEST(CountersTest, EveryFieldIsAUint64) {
  const google::protobuf::Descriptor* d = ferry::v1::Counters::descriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    EXPECT_EQ(d->field(i)->cpp_type(), google::protobuf::FieldDescriptor::CPPTYPE_UINT64)
        << d->field(i)->name();
    EXPECT_FALSE(d->field(i)->is_repeated()) << d->field(i)->name();
  }
}

TEST(CountersTest, AddsAndSubtractsEveryField) {
  ferry::v1::Counters totals;
  totals.set_scanned(10);
  totals.set_bytes(100);
  ferry::v1::Counters delta;
  delta.set_scanned(5);
  delta.set_failed(2);
  delta.set_bytes(50);
  AddCounters(totals, delta);
  EXPECT_EQ(totals.scanned(), 15u);
  EXPECT_EQ(totals.failed(), 2u);
  EXPECT_EQ(totals.bytes(), 150u);
  SubtractCounters(totals, delta);
  EXPECT_EQ(totals.scanned(), 10u);
  EXPECT_EQ(totals.failed(), 0u);
  EXPECT_EQ(totals.bytes(), 100u);
}

TEST(CountersTest, WrapsModulo64Bits) {
  ferry::v1::Counters totals;
  ferry::v1::Counters one;
  one.set_copied(1);
  SubtractCounters(totals, one);  // A shard whose counters went back: the sum stays right.
  AddCounters(totals, one);
  EXPECT_EQ(totals.copied(), 0u);
}

}  // namespace
}  // namespace ferry::wire
