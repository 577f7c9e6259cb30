#include "server/scheduler_internal.h"

#include "proto/wire/job_defaults.h"

namespace ferry::server {

RateShare RateShareOf(const ferry::v1::JobSpec& spec, int running_shards) {
  const double shards = running_shards > 0 ? running_shards : 1;
  RateShare share;
  if (spec.rate_limit() > 0) share.keys_per_second = spec.rate_limit() / shards;
  if (spec.rate_limit_bytes() > 0) share.bytes_per_second = spec.rate_limit_bytes() / shards;
  return share;
}

ferry::v1::ControllerMessage::Lease MakeLease(const ferry::v1::JobSpec& spec,
                                              const ShardRecord& shard, const RateShare& rate,
                                              int default_batch_keys) {
  ferry::v1::ControllerMessage::Lease lease;
  lease.set_lease_id(shard.lease_id);
  lease.set_epoch(shard.epoch);
  lease.set_job_id(shard.job_id);
  *lease.mutable_source() = spec.source();
  *lease.mutable_target() = spec.target();
  *lease.mutable_shard() = shard.shard;
  lease.set_read_from(spec.read_from());
  lease.set_match(spec.match());
  lease.set_type(spec.type());
  lease.set_batch_keys(spec.batch_keys() > 0 ? spec.batch_keys() : default_batch_keys);
  lease.set_on_conflict(spec.on_conflict());
  lease.set_dry_run(spec.dry_run());
  lease.set_copy_path(spec.copy_path());
  lease.set_big_key_bytes(spec.big_key_bytes() > 0 ? spec.big_key_bytes()
                                                   : wire::kDefaultBigKeyBytes);
  lease.set_drop_field_ttls(spec.drop_field_ttls());
  lease.set_kind(spec.kind());
  lease.set_verify_mode(spec.verify_mode());
  lease.set_ttl_tolerance_ms(spec.ttl_tolerance_ms() > 0 ? spec.ttl_tolerance_ms()
                                                         : wire::kDefaultTtlToleranceMs);
  if (spec.live()) {
    lease.set_live_dirty_bytes(spec.live_dirty_bytes() > 0 ? spec.live_dirty_bytes()
                                                           : wire::kDefaultLiveDirtyBytes);
  }
  lease.set_keys_per_second(rate.keys_per_second);
  lease.set_bytes_per_second(rate.bytes_per_second);
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

}  // namespace ferry::server
