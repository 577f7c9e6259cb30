// The standalone string path of ShardReader (shard_reader.h): values from one MGET per batch,
// and the INFO probes around it that prove no key read had a TTL, so that PTTL is skipped.

#include <string>
#include <vector>

#include "agent/shard_reader.h"
#include "common/base/status_macros.h"
#include "common/redis/errors.h"

namespace ferry::agent {
namespace {

using redis::Reply;
using redis::ReplyView;

}  // namespace

void ShardReader::AppendTtlProbe() {
  source_.Append({"INFO", "keyspace"});
  source_.Append({"INFO", "stats"});
}

absl::StatusOr<TtlProbe> ShardReader::ReadTtlProbe() {
  FERRY_ASSIGN_OR_RETURN(Reply keyspace, source_.ReadReply());
  FERRY_ASSIGN_OR_RETURN(Reply stats, source_.ReadReply());
  return ParseTtlProbe(keyspace, stats, spec_.source_db);
}

absl::StatusOr<bool> ShardReader::ReadStandalone(Batch& batch, bool then_scan, uint64_t next_cursor,
                                                 bool probe_ttls) {
  const size_t n = batch.keys.size();
  if (probe_ttls) {
    AppendTtlProbe();
  } else {
    for (absl::string_view key : batch.keys) AppendTtl(key);
  }
  std::vector<absl::string_view> mget;
  mget.reserve(n + 1);
  mget.push_back("MGET");
  mget.insert(mget.end(), batch.keys.begin(), batch.keys.end());
  source_.Append(mget);
  if (probe_ttls) AppendTtlProbe();
  if (then_scan) AppendScan(next_cursor);
  const absl::Time sent = absl::Now();
  FERRY_RETURN_IF_ERROR(source_.Flush());
  TtlProbe before, after;
  if (probe_ttls) {
    FERRY_ASSIGN_OR_RETURN(before, ReadTtlProbe());
    batch.expiry.assign(n, kNoExpiry);
  } else {
    batch.expiry.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      FERRY_ASSIGN_OR_RETURN(Reply pttl, source_.ReadReply());
      if (pttl.is_error()) {
        absl::Status status = ReplyStatus("source", "PTTL", pttl);
        if (redis::Classify(status) != redis::ErrorClass::kPerKey) return status;
      }
      batch.expiry.push_back(pttl.is_error() ? kVanished
                                             : LocalExpiry(pttl.integer(), clock_, sent));
    }
  }
  FERRY_ASSIGN_OR_RETURN(Reply values, source_.ReadReply());
  if (probe_ttls) {
    FERRY_ASSIGN_OR_RETURN(after, ReadTtlProbe());
  }
  if (values.is_error()) return ReplyStatus("source", "MGET", values);
  if (probe_ttls && !NoTtlBetween(before, after)) return false;
  if (!probe_ttls) FERRY_RETURN_IF_ERROR(RereadSlowTtls(batch, sent, then_scan));
  batch.mget = std::make_shared<const Reply>(std::move(values));
  batch.string_value.assign(n, std::nullopt);
  batch.dump.resize(n);
  std::vector<size_t> others;  // Exist (or did at PTTL time) but MGET saw no string.
  for (size_t i = 0; i < n; ++i) {
    const ReplyView value = batch.mget->element(i);
    if (!value.is_nil() && !value.is_error()) {
      batch.string_value[i] = value.str();
      batch.bytes += value.str().size() + batch.keys[i].size();
    } else if (batch.expiry[i] != kVanished) {
      others.push_back(i);
    }
  }
  if (others.empty()) return true;
  // The next SCAN's reply comes before this round's: keep it for the loop.
  if (then_scan && !prefetched_.has_value()) {
    FERRY_ASSIGN_OR_RETURN(prefetched_, source_.ReadReply());
  }
  if (probe_ttls) AppendTtlProbe();
  for (size_t i : others) AppendValueRead(batch, i);
  if (probe_ttls) AppendTtlProbe();
  FERRY_RETURN_IF_ERROR(source_.Flush());
  if (probe_ttls) {
    FERRY_ASSIGN_OR_RETURN(before, ReadTtlProbe());
  }
  std::vector<bool> changed(n, false);
  for (size_t i : others) {
    FERRY_ASSIGN_OR_RETURN(Reply value, source_.ReadReply());
    FERRY_ASSIGN_OR_RETURN(changed[i], TakeValue(batch, i, std::move(value)));
  }
  DeferChanged(batch, changed);
  if (!probe_ttls) return true;
  FERRY_ASSIGN_OR_RETURN(after, ReadTtlProbe());
  return NoTtlBetween(before, after);
}

absl::Status ShardReader::ReadWithMget(Batch& batch, bool then_scan, uint64_t next_cursor) {
  if (ttl_free_) {
    // While the database holds no key with a TTL, PTTL is skipped: one probe before and one
    // after the reads prove no key read had one (NoTtlBetween).
    FERRY_ASSIGN_OR_RETURN(bool done,
                           ReadStandalone(batch, then_scan, next_cursor, /*probe_ttls=*/true));
    if (done) return absl::OkStatus();
    ttl_free_ = false;  // For the rest of this shard; read this batch again with PTTL.
    if (then_scan && !prefetched_.has_value()) {
      FERRY_ASSIGN_OR_RETURN(prefetched_, source_.ReadReply());
    }
    then_scan = false;
    batch.expiry.clear();
    batch.mget.reset();
    batch.string_value.clear();
    batch.dump.clear();
    batch.bytes = 0;
  }
  return ReadStandalone(batch, then_scan, next_cursor, /*probe_ttls=*/false).status();
}

}  // namespace ferry::agent
