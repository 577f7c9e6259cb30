// BatchQueue (agent/shard_reader.h): the bounded hand-off between a shard's reading and
// writing threads.

#include <optional>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "agent/shard_reader.h"
#include "gtest/gtest.h"

namespace ferry::agent {
namespace {

Batch BatchOf(uint64_t bytes, uint64_t cursor) {
  Batch batch;
  batch.bytes = bytes;
  batch.cursor_after = cursor;
  return batch;
}

TEST(BatchQueueTest, HandsBatchesOverInOrderThenTheCloseStatus) {
  BatchQueue queue(1000);
  ASSERT_TRUE(queue.Push(BatchOf(10, 1)));
  ASSERT_TRUE(queue.Push(BatchOf(10, 2)));
  queue.Close(absl::UnavailableError("source gone"));
  std::optional<Batch> first = queue.Pop();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->cursor_after, 1u);
  std::optional<Batch> second = queue.Pop();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->cursor_after, 2u);
  EXPECT_FALSE(queue.Pop().has_value());  // Closed and drained: does not block.
  EXPECT_EQ(queue.status(), absl::UnavailableError("source gone"));
}

TEST(BatchQueueTest, AlwaysAdmitsOneBatchHoweverBig) {
  BatchQueue queue(100);
  EXPECT_TRUE(queue.Push(BatchOf(1'000'000, 1)));
  EXPECT_EQ(queue.Pop()->bytes, 1'000'000u);
}

TEST(BatchQueueTest, ProducerWaitsForRoomInBytes) {
  BatchQueue queue(100);
  ASSERT_TRUE(queue.Push(BatchOf(60, 1)));
  absl::Notification pushed;
  std::thread producer([&] {
    EXPECT_TRUE(queue.Push(BatchOf(60, 2)));  // 120 > 100: waits for the first to go.
    pushed.Notify();
  });
  EXPECT_FALSE(pushed.WaitForNotificationWithTimeout(absl::Milliseconds(100)));
  EXPECT_EQ(queue.Pop()->cursor_after, 1u);
  EXPECT_TRUE(pushed.WaitForNotificationWithTimeout(absl::Seconds(10)));
  producer.join();
  EXPECT_EQ(queue.Pop()->cursor_after, 2u);
}

TEST(BatchQueueTest, StopReleasesAWaitingProducerAndDropsWhatIsQueued) {
  BatchQueue queue(100);
  ASSERT_TRUE(queue.Push(BatchOf(100, 1)));
  std::thread producer([&] { EXPECT_FALSE(queue.Push(BatchOf(10, 2))); });
  absl::SleepFor(absl::Milliseconds(20));  // Let it block; the result holds either way.
  queue.Stop();
  producer.join();
  EXPECT_TRUE(queue.stopped());
  EXPECT_FALSE(queue.Pop().has_value());
  EXPECT_FALSE(queue.Push(BatchOf(1, 3)));
}

TEST(BatchQueueTest, ConsumerWaitsForABatchOrTheClose) {
  BatchQueue queue(100);
  std::optional<Batch> popped = BatchOf(0, 99);
  std::thread consumer([&] { popped = queue.Pop(); });
  absl::SleepFor(absl::Milliseconds(20));
  queue.Close(absl::OkStatus());
  consumer.join();
  EXPECT_FALSE(popped.has_value());
  EXPECT_TRUE(queue.status().ok());
}

}  // namespace
}  // namespace ferry::agent
