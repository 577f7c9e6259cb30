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

// Each running shard's share of the job's rate limit; 0 means no limit.
double RateShare(const ferry::v1::JobSpec& spec, int running_shards);

// The lease for `shard`, with the spec's passwords.
ferry::v1::ControllerMessage::Lease MakeLease(const ferry::v1::JobSpec& spec,
                                              const ShardRecord& shard, double keys_per_second,
                                              int default_batch_keys);

ferry::v1::ControllerMessage MakeAck(const std::string& lease_id, uint64_t epoch);

google::protobuf::Timestamp ToTimestamp(absl::Time time);

}  // namespace ferry::server
