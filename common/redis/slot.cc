#include "common/redis/slot.h"

#include <array>
#include <cstddef>

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

}  // namespace ferry::redis
