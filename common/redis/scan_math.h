#pragma once

#include <cstdint>

#include "absl/strings/string_view.h"

namespace ferry::redis {

// SCAN-cursor shard math, DESIGN.md "Shards: the SCAN cursor math". Pure functions.
//
// Single-dict scheme: shard `s` of `N = 2^bits` owns the positions [s/N, (s+1)/N) of the
// reversed-bit walk. It starts at ShardStartCursor and is finished once ShardFinished says so
// for a cursor returned by SCAN.

// Reverses the low `bits` bits of `value` (bits in [0, 64]); higher bits are dropped.
uint64_t ReverseBits(uint64_t value, int bits);

// The first cursor of shard `shard` of 2^bits shards.
uint64_t ShardStartCursor(uint64_t shard, int bits);

// True when `returned_cursor` (from SCAN) lies outside shard `shard` of 2^bits, or the walk
// wrapped (cursor 0).
bool ShardFinished(uint64_t returned_cursor, uint64_t shard, int bits);

// The share of the whole cursor space, in [0, 2^-bits], that lies between `cursor`'s position
// and the end of shard `shard` of 2^bits: times the database's keys, about how many keys the
// shard still holds after `cursor`.
double ShardRemaining(uint64_t cursor, uint64_t shard, int bits);

// The COUNT for a SCAN from `cursor` in shard `shard` of 2^bits: `batch`, or near the shard's
// end about the keys left in it (ShardRemaining times `db_keys`, the node's key count; 0:
// unknown), so that the last SCAN does not run far into the next shard and return its keys too.
// Never below min(batch, max(8, batch / 128)): no SCANs of one or two keys at the very end.
int ShardScanCount(uint64_t cursor, uint64_t shard, int bits, uint64_t db_keys, int batch);

// Per-slot scheme (cluster nodes of Redis >= 7.4, Valkey >= 8): cursor = (dict_cursor << 14) |
// slot. A shard is the slot range [first_slot, last_slot].
inline constexpr int kSlotBits = 14;
inline constexpr uint64_t kSlotMask = (1u << kSlotBits) - 1;
uint64_t SlotShardStartCursor(int first_slot);
bool SlotShardFinished(uint64_t returned_cursor, int last_slot);

// Which of the two schemes a server's SCAN cursor follows.
enum class ScanScheme { kSingleDict, kPerSlot };

// The scheme of a server from its `INFO server` text (redis_version, valkey_version,
// server_name) and whether it runs in cluster mode: per-slot on cluster nodes of Redis >= 7.4
// (7.3.x are its release candidates) and Valkey >= 8, single-dict everywhere else (standalone
// servers of any version, Redis <= 7.2, Valkey 7.2, which reports redis_version 7.2.x).
ScanScheme ScanSchemeOf(absl::string_view info_server, bool cluster);

// "single-dict" or "per-slot", for messages.
absl::string_view ScanSchemeName(ScanScheme scheme);

}  // namespace ferry::redis
