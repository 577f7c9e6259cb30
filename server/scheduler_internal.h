#pragma once

// Small pure helpers of the Scheduler, shared by scheduler.cc and scheduler_jobs.cc.

#include <string>

#include "absl/time/time.h"
#include "ferry/v1/ferry.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "server/job_store.h"

namespace ferry::server {

// totals += after - before, field by field (modulo 2^64, so a shard whose counters restart
// still sums correctly).
void AddCounters(ferry::v1::Counters& totals, const ferry::v1::Counters& before,
                 const ferry::v1::Counters& after);

// PENDING or RUNNING: shards may be leased.
bool IsRunnable(ferry::v1::JobState state);
// DONE, DONE_WITH_ERRORS, FAILED or CANCELLED.
bool IsEnded(ferry::v1::JobState state);

// Each running shard's share of the job's rate limit; 0 means no limit.
double RateShare(const ferry::v1::JobSpec& spec, int running_shards);

// `db 3 shard 5/8` (and the node when there is one), for logs and errors.
std::string ShardName(const ShardRecord& shard);

// The lease for `shard`, with the spec's passwords.
ferry::v1::ControllerMessage::Lease MakeLease(const ferry::v1::JobSpec& spec,
                                              const ShardRecord& shard, double keys_per_second,
                                              int default_batch_keys);

ferry::v1::ControllerMessage MakeAck(const std::string& lease_id, uint64_t epoch);

google::protobuf::Timestamp ToTimestamp(absl::Time time);
// Appends `slots` to a repeated SlotRange field (leases and shard statuses).
void AddSlotRanges(const redis::SlotRanges& slots,
                   google::protobuf::RepeatedPtrField<ferry::v1::SlotRange>* out);

}  // namespace ferry::server
