#include "agent/batch_sizing.h"

#include <algorithm>
#include <cmath>

#include "common/base/status_macros.h"
#include "common/redis/connection.h"
#include "common/redis/router.h"

namespace ferry::agent {
namespace {

// PINGs per measurement. One: far away each costs a round trip of the shard's setup, and the
// sizes it sets are coarse (a busy moment only makes a batch bigger than needed).
constexpr int kPings = 1;

}  // namespace

BatchSize BatchSizeFor(int base_keys, uint64_t base_bytes, absl::Duration rtt) {
  const double growth = std::clamp(absl::FDivDuration(rtt, kBatchReferenceRtt), 1.0,
                                   static_cast<double>(kMaxBatchGrowth));
  BatchSize size;
  size.keys = std::max(base_keys,
                       std::min(kMaxBatchKeys, static_cast<int>(std::lround(base_keys * growth))));
  const double keys_growth = static_cast<double>(size.keys) / std::max(1, base_keys);
  size.bytes_in_flight = std::max(
      base_bytes, std::min(kMaxBytesInFlight,
                           static_cast<uint64_t>(static_cast<double>(base_bytes) * keys_growth)));
  return size;
}

absl::StatusOr<absl::Duration> MeasureRoundTrip(redis::Connection& connection) {
  absl::Duration shortest = absl::InfiniteDuration();
  for (int i = 0; i < kPings; ++i) {
    const absl::Time start = absl::Now();
    // A refused PING (an ACL) answers all the same: its round trip counts.
    absl::Status status = connection.Command({"PING"}).status();
    if (!status.ok() && connection.broken()) return status;
    shortest = std::min(shortest, absl::Now() - start);
  }
  return shortest;
}

absl::StatusOr<absl::Duration> MeasureRoundTrip(redis::Router& router) {
  absl::Duration shortest = absl::InfiniteDuration();
  for (int i = 0; i < kPings; ++i) {
    const absl::Time start = absl::Now();
    router.Add({"PING"});
    FERRY_RETURN_IF_ERROR(router.Execute().status());
    shortest = std::min(shortest, absl::Now() - start);
  }
  return shortest;
}

}  // namespace ferry::agent
