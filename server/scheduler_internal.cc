#include "server/scheduler_internal.h"

#include "absl/strings/str_cat.h"

namespace ferry::server {

void AddCounters(ferry::v1::Counters& totals, const ferry::v1::Counters& before,
                 const ferry::v1::Counters& after) {
  totals.set_scanned(totals.scanned() + after.scanned() - before.scanned());
  totals.set_copied(totals.copied() + after.copied() - before.copied());
  totals.set_skipped(totals.skipped() + after.skipped() - before.skipped());
  totals.set_vanished(totals.vanished() + after.vanished() - before.vanished());
  totals.set_expired(totals.expired() + after.expired() - before.expired());
  totals.set_failed(totals.failed() + after.failed() - before.failed());
  totals.set_bytes(totals.bytes() + after.bytes() - before.bytes());
}

bool IsRunnable(ferry::v1::JobState state) {
  return state == ferry::v1::JOB_STATE_PENDING || state == ferry::v1::JOB_STATE_RUNNING;
}

bool IsEnded(ferry::v1::JobState state) {
  return state == ferry::v1::JOB_STATE_DONE || state == ferry::v1::JOB_STATE_DONE_WITH_ERRORS ||
         state == ferry::v1::JOB_STATE_FAILED || state == ferry::v1::JOB_STATE_CANCELLED;
}

double RateShare(const ferry::v1::JobSpec& spec, int running_shards) {
  if (spec.rate_limit() <= 0) return 0;
  return spec.rate_limit() / (running_shards > 0 ? running_shards : 1);
}

std::string ShardName(const ShardRecord& shard) {
  return absl::StrCat(
      shard.source_node.empty() ? "" : absl::StrCat(shard.source_node, " "), "db ", shard.source_db,
      " shard ", shard.shard_index, "/", uint64_t{1} << shard.shard_bits,
      shard.slots.empty() ? "" : absl::StrCat(" slots ", redis::FormatSlotRanges(shard.slots)));
}

ferry::v1::ControllerMessage::Lease MakeLease(const ferry::v1::JobSpec& spec,
                                              const ShardRecord& shard, double keys_per_second,
                                              int default_batch_keys) {
  ferry::v1::ControllerMessage::Lease lease;
  lease.set_lease_id(shard.lease_id);
  lease.set_epoch(shard.epoch);
  lease.set_job_id(shard.job_id);
  *lease.mutable_source() = spec.source();
  *lease.mutable_target() = spec.target();
  lease.set_source_node(shard.source_node);
  lease.set_source_db(shard.source_db);
  lease.set_target_db(shard.target_db);
  lease.set_shard_bits(shard.shard_bits);
  lease.set_shard_index(shard.shard_index);
  lease.set_scan_scheme(shard.scan_scheme);
  AddSlotRanges(shard.slots, lease.mutable_slots());
  lease.set_read_from(spec.read_from());
  lease.set_match(spec.match());
  lease.set_type(spec.type());
  lease.set_batch_keys(spec.batch_keys() > 0 ? spec.batch_keys() : default_batch_keys);
  lease.set_on_conflict(spec.on_conflict());
  lease.set_dry_run(spec.dry_run());
  lease.set_keys_per_second(keys_per_second);
  *lease.mutable_resume() = shard.checkpoint;
  return lease;
}

ferry::v1::ControllerMessage MakeAck(const std::string& lease_id, uint64_t epoch) {
  ferry::v1::ControllerMessage message;
  message.mutable_ack()->set_lease_id(lease_id);
  message.mutable_ack()->set_epoch(epoch);
  return message;
}

google::protobuf::Timestamp ToTimestamp(absl::Time time) {
  google::protobuf::Timestamp out;
  const int64_t nanos = absl::ToUnixNanos(time);
  out.set_seconds(nanos / 1000000000);
  out.set_nanos(static_cast<int32_t>(nanos % 1000000000));
  return out;
}

void AddSlotRanges(const redis::SlotRanges& slots,
                   google::protobuf::RepeatedPtrField<ferry::v1::SlotRange>* out) {
  for (const auto& [first, last] : slots) {
    ferry::v1::SlotRange* range = out->Add();
    range->set_first(first);
    range->set_last(last);
  }
}

}  // namespace ferry::server
