#pragma once

// What a JobSpec's zero values mean: the one place these defaults are written. The CLI shows
// them in its help, the scheduler applies them to specs that leave a field 0, and the copy engine
// starts from them.

namespace ferry::wire {

// Keys per SCAN COUNT and per pipelined round trip (JobSpec.batch_keys).
inline constexpr int kDefaultBatchKeys = 1000;
// Shards copied at once from each source node (JobSpec.parallel). A spec that leaves it 0 gets
// this near its servers and up to kMaxAutoParallelPerNode farther away: the planner measures
// the round trip to both sides and grows it by one kDefaultParallelPerNode per
// kAutoParallelRttMicros (a shard far away spends most of its time waiting).
inline constexpr int kDefaultParallelPerNode = 4;
inline constexpr int kMaxAutoParallelPerNode = 16;
inline constexpr long long kAutoParallelRttMicros = 2500;
// Keys above this size (MEMORY USAGE, bytes) are copied in chunks (JobSpec.big_key_bytes). A
// hash of about 10,000 small fields: its RESTORE takes a few milliseconds.
inline constexpr unsigned long long kDefaultBigKeyBytes = 1ull << 20;
// JobSpec.big_key_bytes meaning "no key is big": values are never probed for size (the operator
// knows the data set has no big keys, and saves the source one command per key).
inline constexpr unsigned long long kBigKeysOff = ~0ull;
// Verify jobs: how far apart the two sides' expiries of a key may be, beyond the time the reads
// took (JobSpec.ttl_tolerance_ms).
inline constexpr unsigned kDefaultTtlToleranceMs = 1000;
// JobSpec.live_dirty_bytes.
inline constexpr unsigned long long kDefaultLiveDirtyBytes = 128ull << 20;
// CutoverJobRequest.timeout_seconds.
inline constexpr unsigned kDefaultCutoverTimeoutSeconds = 60;

}  // namespace ferry::wire
