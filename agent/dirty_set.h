#pragma once

// The keys a live watch has seen change and not yet copied (DESIGN.md, "Live sync without lost
// writes"): deduplicated, oldest first, each with the moment it was first marked (the lag is the
// age of the oldest), bounded in bytes. Not thread-safe: the watcher's thread owns it.

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"

namespace ferry::agent {

class DirtySet {
 public:
  // What one key counts against the bound besides its bytes: its queue entry and its slot in
  // the index (measured: see dirty_set_test.cc).
  static constexpr uint64_t kBytesPerKey = 64;

  // `max_bytes`: key bytes plus kBytesPerKey per key.
  explicit DirtySet(uint64_t max_bytes) : max_bytes_(max_bytes) {}
  DirtySet(const DirtySet&) = delete;
  DirtySet& operator=(const DirtySet&) = delete;

  enum class Mark { kAdded, kAlreadyDirty, kFull };
  // Marks `key` dirty at `now_ms`; a key already dirty keeps its place and its time. kFull: the
  // key did not fit (nothing changed); the caller has lost an event.
  Mark Add(absl::string_view key, int64_t now_ms);
  // Removes and returns up to `max_keys` of the oldest keys (their marks cleared: a new event
  // marks them again).
  std::vector<std::string> Take(size_t max_keys);
  void Clear();

  size_t size() const { return queue_.size(); }
  bool empty() const { return queue_.empty(); }
  uint64_t bytes() const { return bytes_; }
  // Milliseconds since the oldest key was marked; 0 when empty.
  int64_t OldestAgeMs(int64_t now_ms) const;
  // Marks made so far (kAdded); the sequence number the next one gets.
  uint64_t next_seq() const { return removed_ + queue_.size(); }
  // The sequence number of the oldest key; next_seq() when empty. A key marked before a moment
  // whose next_seq() was s is still dirty exactly when oldest_seq() < s.
  uint64_t oldest_seq() const { return removed_; }

 private:
  // Keys leave from the front only, so an entry's sequence number is removed_ plus its index.
  struct Entry {
    std::string key;
    int64_t marked_ms;
  };
  static uint64_t Cost(absl::string_view key) { return key.size() + kBytesPerKey; }

  const uint64_t max_bytes_;
  // Oldest first. A deque never moves its elements on push_back/pop_front, so index_ may look
  // at their keys' bytes (an SSO key lives inside its Entry).
  std::deque<Entry> queue_;
  absl::flat_hash_set<absl::string_view> index_;
  uint64_t bytes_ = 0;
  uint64_t removed_ = 0;  // Keys taken or cleared so far.
};

}  // namespace ferry::agent
