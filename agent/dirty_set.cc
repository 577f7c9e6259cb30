#include "agent/dirty_set.h"

#include <algorithm>
#include <utility>

namespace ferry::agent {

DirtySet::Mark DirtySet::Add(absl::string_view key, int64_t now_ms) {
  if (index_.contains(key)) return Mark::kAlreadyDirty;
  if (bytes_ + Cost(key) > max_bytes_) return Mark::kFull;
  queue_.push_back(Entry{std::string(key), now_ms});
  index_.insert(queue_.back().key);
  bytes_ += Cost(key);
  return Mark::kAdded;
}

std::vector<std::string> DirtySet::Take(size_t max_keys) {
  std::vector<std::string> keys;
  keys.reserve(std::min(max_keys, queue_.size()));
  while (!queue_.empty() && keys.size() < max_keys) {
    Entry& entry = queue_.front();
    index_.erase(absl::string_view(entry.key));
    bytes_ -= Cost(entry.key);
    keys.push_back(std::move(entry.key));
    queue_.pop_front();
    ++removed_;
  }
  if (queue_.empty()) {
    // Give the memory of a burst back.
    std::deque<Entry>().swap(queue_);
    absl::flat_hash_set<absl::string_view>().swap(index_);
  }
  return keys;
}

void DirtySet::Clear() {
  removed_ += queue_.size();
  std::deque<Entry>().swap(queue_);
  absl::flat_hash_set<absl::string_view>().swap(index_);
  bytes_ = 0;
}

int64_t DirtySet::OldestAgeMs(int64_t now_ms) const {
  if (queue_.empty()) return 0;
  return std::max<int64_t>(0, now_ms - queue_.front().marked_ms);
}

}  // namespace ferry::agent
