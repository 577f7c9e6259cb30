#include "common/redis/slot.h"

#include <algorithm>
#include <array>
#include <cstddef>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace ferry::redis {
namespace {

// The table Redis' src/crc16.c spells out: CRC16-CCITT (XMODEM), polynomial 0x1021, initial
// value 0, no reflection. Built at compile time from the polynomial rather than copied.
constexpr std::array<uint16_t, 256> MakeCrc16Table() {
  std::array<uint16_t, 256> table{};
  for (int byte = 0; byte < 256; ++byte) {
    uint16_t crc = static_cast<uint16_t>(byte << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                           : static_cast<uint16_t>(crc << 1);
    }
    table[byte] = crc;
  }
  return table;
}

constexpr std::array<uint16_t, 256> kCrc16Table = MakeCrc16Table();

// Spot checks against the literal table in Redis' crc16.c.
static_assert(kCrc16Table[1] == 0x1021);
static_assert(kCrc16Table[2] == 0x2042);
static_assert(kCrc16Table[16] == 0x1231);
static_assert(kCrc16Table[255] == 0x1ef0);

}  // namespace

uint16_t Crc16(absl::string_view data) {
  uint16_t crc = 0;
  for (unsigned char c : data) {
    crc = static_cast<uint16_t>((crc << 8) ^ kCrc16Table[((crc >> 8) ^ c) & 0xff]);
  }
  return crc;
}

int KeySlot(absl::string_view key) {
  // Redis' keyHashSlot: the tag is between the first '{' and the first '}' after it, and only
  // counts when it is non-empty.
  const size_t open = key.find('{');
  if (open != absl::string_view::npos) {
    const size_t close = key.find('}', open + 1);
    if (close != absl::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return Crc16(key) & (kClusterSlots - 1);
}

const std::string& TagForSlot(int slot) {
  // Counting up from 0 covers every slot after about 160,000 numbers (a few ms, once).
  static const std::vector<std::string>* const tags = [] {
    auto* table = new std::vector<std::string>(kClusterSlots);
    int found = 0;
    for (uint64_t n = 0; found < kClusterSlots; ++n) {
      std::string tag = std::to_string(n);
      std::string& entry = (*table)[KeySlot(tag)];
      if (!entry.empty()) continue;
      entry = std::move(tag);
      ++found;
    }
    return table;
  }();
  return (*tags)[slot & (kClusterSlots - 1)];
}

SlotSet SlotSet::FromRanges(const SlotRanges& ranges) {
  SlotSet set;
  for (const auto& [first, last] : ranges) set.AddRange(first, last);
  return set;
}

void SlotSet::AddRange(int first, int last) {
  first = std::max(first, 0);
  last = std::min(last, kClusterSlots - 1);
  for (int slot = first; slot <= last; ++slot) Add(slot);
}

int SlotSet::first() const {
  for (int slot = 0; slot < kClusterSlots; ++slot) {
    if (Contains(slot)) return slot;
  }
  return -1;
}

int SlotSet::last() const {
  for (int slot = kClusterSlots - 1; slot >= 0; --slot) {
    if (Contains(slot)) return slot;
  }
  return -1;
}

SlotRanges SlotSet::Ranges() const {
  SlotRanges ranges;
  for (int slot = 0; slot < kClusterSlots; ++slot) {
    if (!Contains(slot)) continue;
    if (!ranges.empty() && ranges.back().second == slot - 1) {
      ranges.back().second = slot;
    } else {
      ranges.emplace_back(slot, slot);
    }
  }
  return ranges;
}

std::string FormatSlotRanges(const SlotRanges& ranges) {
  return absl::StrJoin(ranges, ",", [](std::string* out, const std::pair<int, int>& range) {
    absl::StrAppend(out, range.first);
    if (range.second != range.first) absl::StrAppend(out, "-", range.second);
  });
}

absl::StatusOr<SlotRanges> ParseSlotRanges(absl::string_view text) {
  SlotRanges ranges;
  if (text.empty()) return ranges;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    const size_t dash = part.find('-');
    int first = 0;
    int last = 0;
    bool ok = absl::SimpleAtoi(part.substr(0, dash), &first);
    if (dash == absl::string_view::npos) {
      last = first;
    } else {
      ok = ok && absl::SimpleAtoi(part.substr(dash + 1), &last);
    }
    if (!ok || first < 0 || last < first || last >= kClusterSlots) {
      return absl::InvalidArgumentError(absl::StrCat("bad slot range \"", part, "\""));
    }
    ranges.emplace_back(first, last);
  }
  return ranges;
}

}  // namespace ferry::redis
