#pragma once

// Small pure helpers of the Scheduler, shared by scheduler.cc and scheduler_jobs.cc.

#include <string>

#include "absl/time/time.h"
#include "ferry/v1/ferry.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "proto/wire/job_state.h"
#include "server/job_store.h"

namespace ferry::server {

using wire::IsEnded;
using wire::IsRunnable;

// Each running shard's share of the job's rate limits (JobSpec.rate_limit, rate_limit_bytes);
// 0 means no limit.
struct RateShare {
  double keys_per_second = 0;
  double bytes_per_second = 0;
  bool operator==(const RateShare& other) const {
    return keys_per_second == other.keys_per_second && bytes_per_second == other.bytes_per_second;
  }
  bool operator!=(const RateShare& other) const { return !(*this == other); }
};
RateShare RateShareOf(const ferry::v1::JobSpec& spec, int running_shards);

// The lease for `shard`, with the spec's passwords.
ferry::v1::ControllerMessage::Lease MakeLease(const ferry::v1::JobSpec& spec,
                                              const ShardRecord& shard, const RateShare& rate,
                                              int default_batch_keys);

ferry::v1::ControllerMessage MakeAck(const std::string& lease_id, uint64_t epoch);

google::protobuf::Timestamp ToTimestamp(absl::Time time);

}  // namespace ferry::server
