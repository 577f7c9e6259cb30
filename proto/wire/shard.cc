#include "proto/wire/shard.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace ferry::wire {

ferry::v1::ScanScheme ScanSchemeToProto(redis::ScanScheme scheme) {
  return scheme == redis::ScanScheme::kPerSlot ? ferry::v1::SCAN_SCHEME_PER_SLOT
                                               : ferry::v1::SCAN_SCHEME_SINGLE_DICT;
}

redis::ScanScheme ScanSchemeFromProto(ferry::v1::ScanScheme scheme) {
  return scheme == ferry::v1::SCAN_SCHEME_PER_SLOT ? redis::ScanScheme::kPerSlot
                                                   : redis::ScanScheme::kSingleDict;
}

void AddSlotRanges(const redis::SlotRanges& slots, SlotRangeList* out) {
  for (const auto& [first, last] : slots) {
    ferry::v1::SlotRange* range = out->Add();
    range->set_first(first);
    range->set_last(last);
  }
}

redis::SlotRanges SlotRangesFromProto(const SlotRangeList& ranges) {
  redis::SlotRanges out;
  for (const ferry::v1::SlotRange& range : ranges) out.emplace_back(range.first(), range.last());
  return out;
}

std::string ShardName(const ferry::v1::ShardRef& shard) {
  const std::string slice =
      shard.watch() ? " watch"
                    : absl::StrCat(" shard ", shard.shard_index(), "/",
                                   uint64_t{1} << std::clamp(shard.shard_bits(), 0, 63));
  return absl::StrCat(
      shard.source_node().empty() ? "" : absl::StrCat(shard.source_node(), " "), "db ",
      shard.source_db(), slice,
      shard.slots().empty()
          ? ""
          : absl::StrCat(" slots ", redis::FormatSlotRanges(SlotRangesFromProto(shard.slots()))));
}

}  // namespace ferry::wire
