#pragma once

// Sums of ferry.v1.Counters, field by field through reflection: a counter added to the proto is
// summed by the controller and the agents without another edit.

#include "ferry/v1/ferry.pb.h"

namespace ferry::wire {

// totals += delta for every field (modulo 2^64).
void AddCounters(ferry::v1::Counters& totals, const ferry::v1::Counters& delta);
// totals -= delta for every field (modulo 2^64, so a shard whose counters restart from zero
// still sums correctly when its old values are subtracted and the new ones added).
void SubtractCounters(ferry::v1::Counters& totals, const ferry::v1::Counters& delta);

}  // namespace ferry::wire
