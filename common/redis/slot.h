#pragma once

#include <bitset>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ferry::redis {

inline constexpr int kClusterSlots = 16384;

// CRC16 (XMODEM) as Redis Cluster uses it.
uint16_t Crc16(absl::string_view data);

// The cluster slot of `key`: CRC16 of its `{hash tag}` when it has a non-empty one, else of the
// whole key, modulo 16384.
int KeySlot(absl::string_view key);

// A short string (decimal digits) whose slot is `slot`: a key with `{<tag>}` in it lands in that
// slot, e.g. a temporary key that must share a slot with another key. Thread-safe.
const std::string& TagForSlot(int slot);

// Inclusive slot ranges [first, last], as ClusterNode::slots holds them.
using SlotRanges = std::vector<std::pair<int, int>>;

// A set of cluster slots. A value type (2 KiB).
class SlotSet {
 public:
  SlotSet() = default;
  // Ranges outside [0, 16383] are clipped.
  static SlotSet FromRanges(const SlotRanges& ranges);

  void Add(int slot) { bits_.set(static_cast<size_t>(slot)); }
  void AddRange(int first, int last);
  void Remove(int slot) { bits_.reset(static_cast<size_t>(slot)); }
  bool Contains(int slot) const { return bits_.test(static_cast<size_t>(slot)); }
  bool empty() const { return bits_.none(); }
  int size() const { return static_cast<int>(bits_.count()); }
  // The lowest and highest slot; -1 when empty.
  int first() const;
  int last() const;
  // Sorted, merged ranges.
  SlotRanges Ranges() const;

  SlotSet& operator|=(const SlotSet& other) {
    bits_ |= other.bits_;
    return *this;
  }
  SlotSet& operator&=(const SlotSet& other) {
    bits_ &= other.bits_;
    return *this;
  }
  // Removes the slots of `other`.
  SlotSet& operator-=(const SlotSet& other) {
    bits_ &= ~other.bits_;
    return *this;
  }
  bool operator==(const SlotSet& other) const { return bits_ == other.bits_; }
  bool operator!=(const SlotSet& other) const { return bits_ != other.bits_; }

 private:
  std::bitset<kClusterSlots> bits_;
};

// "0-5460,10923-16383,42": ranges separated by commas, a single slot without its dash; empty
// for no range. The form the job store and the logs use.
std::string FormatSlotRanges(const SlotRanges& ranges);
// The inverse of FormatSlotRanges; INVALID_ARGUMENT for anything else.
absl::StatusOr<SlotRanges> ParseSlotRanges(absl::string_view text);

}  // namespace ferry::redis
