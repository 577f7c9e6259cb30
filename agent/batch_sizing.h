#pragma once

// How big a shard's batches are at a distance. A batch costs a few round trips to the source
// and one to the target whatever its size (SCAN, the size probe, the reads; the writes), so far
// from the servers small batches spend most of their time waiting. The batch grows with the
// round trip so that those waits stay a small part of its time, bounded by keys per batch and
// by bytes in flight (README "Performance": the latency table).

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ferry::redis {
class Connection;
class Router;
}  // namespace ferry::redis

namespace ferry::agent {

// Up to this round trip, the configured batch (--batch) is used as it is.
inline constexpr absl::Duration kBatchReferenceRtt = absl::Milliseconds(1);
// Batches grow at most this many times, and to at most this many keys.
inline constexpr int kMaxBatchGrowth = 32;
inline constexpr int kMaxBatchKeys = 20000;
// Bytes in flight (read, not yet written, per shard) grow with the batch up to this.
inline constexpr uint64_t kMaxBytesInFlight = 64ull << 20;

struct BatchSize {
  int keys = 0;
  uint64_t bytes_in_flight = 0;
};

// The batch for a copy whose slower side is `rtt` away: `base_keys` and `base_bytes` grown by
// rtt / kBatchReferenceRtt (never shrunk), within the bounds above.
BatchSize BatchSizeFor(int base_keys, uint64_t base_bytes, absl::Duration rtt);

// A PING's round trip on the connection: the link's, with hardly any server work in it.
absl::StatusOr<absl::Duration> MeasureRoundTrip(redis::Connection& connection);
absl::StatusOr<absl::Duration> MeasureRoundTrip(redis::Router& router);

}  // namespace ferry::agent
