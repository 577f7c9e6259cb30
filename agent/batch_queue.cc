// BatchQueue (shard_reader.h): the byte-bounded queue between a shard's reader and its writer.

#include <optional>
#include <utility>

#include "agent/shard_reader.h"

namespace ferry::agent {

bool BatchQueue::Push(Batch batch) {
  absl::MutexLock lock(&mu_);
  auto room = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopped_ || queue_.empty() || bytes_ + batch.bytes <= max_bytes_;
  };
  mu_.Await(absl::Condition(&room));
  if (stopped_) return false;
  bytes_ += batch.bytes;
  queue_.push_back(std::move(batch));
  return true;
}

std::optional<Batch> BatchQueue::Pop() {
  absl::MutexLock lock(&mu_);
  auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !queue_.empty() || closed_ || stopped_;
  };
  mu_.Await(absl::Condition(&ready));
  if (queue_.empty() || stopped_) return std::nullopt;
  Batch batch = std::move(queue_.front());
  queue_.pop_front();
  bytes_ -= batch.bytes;
  return batch;
}

void BatchQueue::Close(absl::Status status) {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  status_ = std::move(status);
}

void BatchQueue::Stop() {
  absl::MutexLock lock(&mu_);
  stopped_ = true;
}

bool BatchQueue::stopped() {
  absl::MutexLock lock(&mu_);
  return stopped_;
}

absl::Status BatchQueue::status() {
  absl::MutexLock lock(&mu_);
  return status_;
}

}  // namespace ferry::agent
