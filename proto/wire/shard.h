#pragma once

// ferry.v1.ShardRef, the one description of a shard, and the conversions of its enum and
// repeated fields to the types of common/redis.

#include <string>

#include "common/redis/scan_math.h"
#include "common/redis/slot.h"
#include "ferry/v1/ferry.pb.h"

namespace ferry::wire {

using SlotRangeList = google::protobuf::RepeatedPtrField<ferry::v1::SlotRange>;

ferry::v1::ScanScheme ScanSchemeToProto(redis::ScanScheme scheme);
redis::ScanScheme ScanSchemeFromProto(ferry::v1::ScanScheme scheme);

// Appends `slots` to a repeated SlotRange field.
void AddSlotRanges(const redis::SlotRanges& slots, SlotRangeList* out);
redis::SlotRanges SlotRangesFromProto(const SlotRangeList& ranges);

// `10.0.0.1:7000 db 3 shard 5/8 slots 0-5460` (node and slots when there are any), for logs and
// errors.
std::string ShardName(const ferry::v1::ShardRef& shard);

}  // namespace ferry::wire
