#include "proto/wire/counters.h"

#include <cstdint>

namespace ferry::wire {
namespace {

// Applies `op` to each field of `totals` and the same field of `delta`. Every field of Counters
// is a uint64 (ferry.proto says so); a field of another type would be a programming error that
// the unit test catches.
template <typename Op>
void Combine(ferry::v1::Counters& totals, const ferry::v1::Counters& delta, Op op) {
  const google::protobuf::Descriptor* descriptor = ferry::v1::Counters::descriptor();
  const google::protobuf::Reflection* reflection = ferry::v1::Counters::GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = descriptor->field(i);
    const uint64_t sum =
        op(reflection->GetUInt64(totals, field), reflection->GetUInt64(delta, field));
    reflection->SetUInt64(&totals, field, sum);
  }
}

}  // namespace

void AddCounters(ferry::v1::Counters& totals, const ferry::v1::Counters& delta) {
  Combine(totals, delta, [](uint64_t a, uint64_t b) { return a + b; });
}

void SubtractCounters(ferry::v1::Counters& totals, const ferry::v1::Counters& delta) {
  Combine(totals, delta, [](uint64_t a, uint64_t b) { return a - b; });
}

}  // namespace ferry::wire
