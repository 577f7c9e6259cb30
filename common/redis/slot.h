#pragma once

#include <cstdint>

#include "absl/strings/string_view.h"

namespace ferry::redis {

inline constexpr int kClusterSlots = 16384;

// CRC16 (XMODEM) as Redis Cluster uses it.
uint16_t Crc16(absl::string_view data);

// The cluster slot of `key`: CRC16 of its `{hash tag}` when it has a non-empty one, else of the
// whole key, modulo 16384.
int KeySlot(absl::string_view key);

}  // namespace ferry::redis
