#include "common/redis/scan_math.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "common/redis/connection.h"

namespace ferry::redis {
namespace {

uint64_t Reverse64(uint64_t v) {
  v = ((v >> 1) & 0x5555555555555555ULL) | ((v & 0x5555555555555555ULL) << 1);
  v = ((v >> 2) & 0x3333333333333333ULL) | ((v & 0x3333333333333333ULL) << 2);
  v = ((v >> 4) & 0x0F0F0F0F0F0F0F0FULL) | ((v & 0x0F0F0F0F0F0F0F0FULL) << 4);
  v = ((v >> 8) & 0x00FF00FF00FF00FFULL) | ((v & 0x00FF00FF00FF00FFULL) << 8);
  v = ((v >> 16) & 0x0000FFFF0000FFFFULL) | ((v & 0x0000FFFF0000FFFFULL) << 16);
  return (v >> 32) | (v << 32);
}

// The low `bits` bits set; bits outside [0, 64] are clamped.
uint64_t LowMask(int bits) {
  if (bits <= 0) return 0;
  if (bits >= 64) return ~uint64_t{0};
  return (uint64_t{1} << bits) - 1;
}

}  // namespace

uint64_t ReverseBits(uint64_t value, int bits) {
  if (bits <= 0) return 0;
  if (bits >= 64) return Reverse64(value);
  return Reverse64(value & LowMask(bits)) >> (64 - bits);
}

uint64_t ShardStartCursor(uint64_t shard, int bits) { return ReverseBits(shard, bits); }

bool ShardFinished(uint64_t returned_cursor, uint64_t shard, int bits) {
  // Cursor 0 first: shard 0 starts at 0 too, and 0 also means the walk wrapped.
  if (returned_cursor == 0) return true;
  // The low `bits` bits of a cursor are the top `bits` bits of its position, reversed: they
  // equal rev_b(shard) exactly while the walk is inside the shard, and positions only grow.
  return (returned_cursor & LowMask(bits)) != ReverseBits(shard, bits);
}

double ShardRemaining(uint64_t cursor, uint64_t shard, int bits) {
  const double end = std::ldexp(static_cast<double>(shard + 1), -bits);
  const double position = std::ldexp(static_cast<double>(Reverse64(cursor)), -64);
  return std::max(0.0, end - position);
}

int ShardScanCount(uint64_t cursor, uint64_t shard, int bits, uint64_t db_keys, int batch) {
  // SCAN stops once it holds COUNT keys: asking for the keys left ends the shard in one call
  // about half the time, else in one more small one, and never runs far past it.
  if (db_keys == 0) return batch;
  const int floor = std::min(batch, std::max(8, batch / 128));
  const double left = ShardRemaining(cursor, shard, bits) * static_cast<double>(db_keys);
  if (left >= batch) return batch;
  return std::max(floor, static_cast<int>(std::ceil(left)));
}

uint64_t SlotShardStartCursor(int first_slot) {
  return static_cast<uint64_t>(first_slot) & kSlotMask;
}

bool SlotShardFinished(uint64_t returned_cursor, int last_slot) {
  if (returned_cursor == 0) return true;
  return static_cast<int>(returned_cursor & kSlotMask) > last_slot;
}

ScanScheme ScanSchemeOf(absl::string_view info_server, bool cluster) {
  if (!cluster) return ScanScheme::kSingleDict;
  // Valkey 8 says redis_version:7.2.4 for compatibility; its own version is valkey_version.
  const std::string valkey = InfoField(info_server, "valkey_version");
  if (!valkey.empty()) {
    return MajorMinor(valkey).first >= 8 ? ScanScheme::kPerSlot : ScanScheme::kSingleDict;
  }
  if (InfoField(info_server, "server_name") == "valkey") return ScanScheme::kSingleDict;
  return MajorMinor(InfoField(info_server, "redis_version")) >= std::make_pair(7, 3)
             ? ScanScheme::kPerSlot
             : ScanScheme::kSingleDict;
}

absl::string_view ScanSchemeName(ScanScheme scheme) {
  return scheme == ScanScheme::kPerSlot ? "per-slot" : "single-dict";
}

}  // namespace ferry::redis
