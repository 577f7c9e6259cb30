// DirtySet (dirty_set.h): one mark per key, oldest first, the bound in bytes, the lag, the
// sequence numbers a cutover counts on, and what a million keys cost.

#include "agent/dirty_set.h"

#include <malloc.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::agent {
namespace {

using ::testing::ElementsAre;

TEST(DirtySetTest, MarksEachKeyOnceOldestFirst) {
  DirtySet dirty(1 << 20);
  EXPECT_EQ(dirty.Add("a", 100), DirtySet::Mark::kAdded);
  EXPECT_EQ(dirty.Add("b", 200), DirtySet::Mark::kAdded);
  EXPECT_EQ(dirty.Add("a", 300), DirtySet::Mark::kAlreadyDirty);
  EXPECT_EQ(dirty.Add("c", 400), DirtySet::Mark::kAdded);
  EXPECT_EQ(dirty.size(), 3u);
  EXPECT_EQ(dirty.bytes(), 3 * (1 + DirtySet::kBytesPerKey));
  // "a" keeps its first time: the lag counts from the oldest unprocessed event.
  EXPECT_EQ(dirty.OldestAgeMs(1100), 1000);
  EXPECT_THAT(dirty.Take(2), ElementsAre("a", "b"));
  EXPECT_EQ(dirty.OldestAgeMs(1100), 700);
  EXPECT_THAT(dirty.Take(10), ElementsAre("c"));
  EXPECT_TRUE(dirty.empty());
  EXPECT_EQ(dirty.bytes(), 0u);
  EXPECT_EQ(dirty.OldestAgeMs(1100), 0);
}

TEST(DirtySetTest, TakingClearsTheMarkSoANewEventMarksAgain) {
  DirtySet dirty(1 << 20);
  dirty.Add("k", 1);
  dirty.Add("other", 2);
  EXPECT_THAT(dirty.Take(1), ElementsAre("k"));
  // A write after the read of "k": marked again, now behind "other".
  EXPECT_EQ(dirty.Add("k", 3), DirtySet::Mark::kAdded);
  EXPECT_THAT(dirty.Take(5), ElementsAre("other", "k"));
}

TEST(DirtySetTest, RefusesAKeyBeyondTheBoundAndChangesNothing) {
  // Room for two 10-byte keys, not three.
  DirtySet dirty(2 * (10 + DirtySet::kBytesPerKey) + 5);
  EXPECT_EQ(dirty.Add("key-000001", 1), DirtySet::Mark::kAdded);
  EXPECT_EQ(dirty.Add("key-000002", 1), DirtySet::Mark::kAdded);
  EXPECT_EQ(dirty.Add("key-000003", 1), DirtySet::Mark::kFull);
  // A key already dirty is no new cost.
  EXPECT_EQ(dirty.Add("key-000001", 1), DirtySet::Mark::kAlreadyDirty);
  EXPECT_EQ(dirty.size(), 2u);
  dirty.Take(1);
  EXPECT_EQ(dirty.Add("key-000003", 1), DirtySet::Mark::kAdded);
  dirty.Clear();
  EXPECT_TRUE(dirty.empty());
  EXPECT_EQ(dirty.bytes(), 0u);
  EXPECT_EQ(dirty.Add("key-000004", 1), DirtySet::Mark::kAdded);
}

TEST(DirtySetTest, SequenceNumbersTellWhatWasMarkedBeforeAMoment) {
  DirtySet dirty(1 << 20);
  dirty.Add("before-1", 1);
  dirty.Add("before-2", 1);
  const uint64_t boundary = dirty.next_seq();
  dirty.Add("after", 2);
  EXPECT_LT(dirty.oldest_seq(), boundary);
  dirty.Take(1);
  EXPECT_LT(dirty.oldest_seq(), boundary);
  dirty.Take(1);
  // Only keys marked after the moment remain.
  EXPECT_GE(dirty.oldest_seq(), boundary);
  dirty.Take(1);
  EXPECT_EQ(dirty.oldest_seq(), dirty.next_seq());
}

TEST(DirtySetTest, AMillionKeysFitTheirBoundAndTheIssuesBudget) {
  constexpr int kKeys = 1000000;
  std::vector<std::string> keys;
  keys.reserve(kKeys);
  for (int i = 0; i < kKeys; ++i) keys.push_back(absl::StrCat("user:session:", 1000000 + i));
  const struct mallinfo2 before = mallinfo2();
  {
    DirtySet dirty(uint64_t{128} << 20);
    for (int i = 0; i < kKeys; ++i) ASSERT_EQ(dirty.Add(keys[i], i), DirtySet::Mark::kAdded);
    const struct mallinfo2 after = mallinfo2();
    const double per_key =
        static_cast<double>((after.uordblks + after.hblkhd) - (before.uordblks + before.hblkhd)) /
        kKeys;
    std::printf("dirty set: %.1f bytes per %zu-byte key, bound counts %llu\n", per_key,
                keys[0].size(), static_cast<unsigned long long>(dirty.bytes() / kKeys));
    // The issue's budget: 1M keys within 200 MB.
    EXPECT_LT(per_key * kKeys, 200e6);
    // The bound is honest within a factor: it counts what the memory is.
    EXPECT_LT(per_key, 2.0 * static_cast<double>(dirty.bytes()) / kKeys);
    EXPECT_EQ(dirty.Take(kKeys).size(), static_cast<size_t>(kKeys));
  }
}

}  // namespace
}  // namespace ferry::agent
