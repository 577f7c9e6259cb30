#include "agent/expiry.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/redis/capabilities.h"
#include "common/redis/info.h"

namespace ferry::agent {
namespace {

// TIME round trips per measurement; the tightest bound wins.
constexpr int kClockSamples = 3;

// One TIME reply as Unix microseconds; nullopt when it is not the usual pair.
std::optional<int64_t> TimeMicros(const redis::Reply& time) {
  int64_t seconds = 0, micros = 0;
  if (time.size() != 2 || !absl::SimpleAtoi(time.element(0).str(), &seconds) ||
      !absl::SimpleAtoi(time.element(1).str(), &micros)) {
    return std::nullopt;
  }
  return seconds * 1000000 + micros;
}

// Floor division for possibly negative microseconds.
int64_t FloorMillis(int64_t us) { return us >= 0 ? us / 1000 : -((-us + 999) / 1000); }

}  // namespace

absl::StatusOr<SourceClock> SourceClock::Measure(redis::Connection& source) {
  std::optional<int64_t> best_us;
  for (int i = 0; i < kClockSamples; ++i) {
    const absl::Time sent = absl::Now();
    FERRY_ASSIGN_OR_RETURN(redis::Reply time, source.Command({"TIME"}));
    const std::optional<int64_t> source_us = TimeMicros(time);
    if (!source_us.has_value()) return absl::InternalError("source TIME: unexpected reply");
    // The source read its clock after `sent`: it is at most this far ahead of ours.
    const int64_t max_offset_us = *source_us - absl::ToUnixMicros(sent);
    best_us = best_us.has_value() ? std::min(*best_us, max_offset_us) : max_offset_us;
  }
  return SourceClock(-FloorMillis(-*best_us));  // Rounded up.
}

absl::StatusOr<std::optional<SourceClock>> AbsoluteExpiryClock(redis::Connection& source) {
  FERRY_ASSIGN_OR_RETURN(const redis::Capabilities caps, redis::ReadCapabilities(source));
  return AbsoluteExpiryClock(source, caps);
}

absl::StatusOr<std::optional<SourceClock>> AbsoluteExpiryClock(redis::Connection& source,
                                                               const redis::Capabilities& caps) {
  if (!caps.pexpiretime()) return std::nullopt;
  absl::StatusOr<redis::Reply> probe = source.Command({"PEXPIRETIME", "ferry:probe"});
  if (!probe.ok()) {
    if (source.broken()) return probe.status();
    return std::nullopt;  // Renamed or refused: PTTL it is.
  }
  absl::StatusOr<SourceClock> clock = SourceClock::Measure(source);
  if (!clock.ok()) {
    if (source.broken()) return clock.status();
    return std::nullopt;  // TIME refused.
  }
  return std::optional<SourceClock>(*clock);
}

int64_t LocalExpiry(int64_t value, const std::optional<SourceClock>& clock, absl::Time sent) {
  if (value < 0) return value == kNoExpiry ? kNoExpiry : kVanished;
  if (clock.has_value()) return clock->ToLocalMs(value);
  // The source answered after `sent`: its expiry is no earlier than this (PTTL itself is
  // rounded down by the server).
  return absl::ToUnixMillis(sent) + value;
}

absl::StatusOr<ExpiryMapper> ExpiryMapper::Measure(redis::Connection* target) {
  ExpiryMapper mapper;
  if (target == nullptr) return mapper;
  FERRY_ASSIGN_OR_RETURN(std::optional<std::string> info, redis::ReadInfo(*target, "server"));
  if (!info.has_value()) return mapper;
  const redis::Capabilities caps = redis::Capabilities::FromInfo(*info);
  if (!caps.restore_absttl()) return mapper;
  absl::StatusOr<redis::Reply> time = target->Command({"TIME"});
  const absl::Time after = absl::Now();
  if (!time.ok()) {
    if (time.status().code() == absl::StatusCode::kPermissionDenied) return mapper;
    return time.status();
  }
  const std::optional<int64_t> target_us = TimeMicros(*time);
  if (!target_us.has_value()) return mapper;
  // The target read its clock before `after` (ours): the offset is at least its reading minus
  // `after`.
  mapper.offset_ms_ = FloorMillis(*target_us - absl::ToUnixMicros(after));
  mapper.absolute_ = true;
  mapper.pxat_ = caps.set_pxat();
  return mapper;
}

ExpiryMapper ExpiryMapper::Absolute(int64_t offset_ms) {
  ExpiryMapper mapper;
  mapper.absolute_ = mapper.pxat_ = true;
  mapper.offset_ms_ = offset_ms;
  return mapper;
}

ExpiryMapper ExpiryMapper::Earliest(const ExpiryMapper& a, const ExpiryMapper& b) {
  ExpiryMapper out = a;
  out.absolute_ = a.absolute_ && b.absolute_;
  out.pxat_ = a.pxat_ && b.pxat_;
  out.offset_ms_ = std::min(a.offset_ms_, b.offset_ms_);
  out.relative_margin_ = std::max(a.relative_margin_, b.relative_margin_);
  return out;
}

std::optional<int64_t> ExpiryMapper::RelativeTtl(int64_t local_expiry_ms) const {
  const int64_t ttl = local_expiry_ms - absl::ToUnixMillis(absl::Now()) -
                      absl::ToInt64Milliseconds(relative_margin_) - 1;
  if (ttl <= 0) return std::nullopt;
  return ttl;
}

std::optional<std::pair<absl::string_view, int64_t>> ExpiryMapper::SetExpiry(
    int64_t local_expiry_ms) const {
  if (pxat_) {
    std::optional<int64_t> at = RestoreTtl(local_expiry_ms);
    if (!at.has_value()) return std::nullopt;
    return std::make_pair(absl::string_view("PXAT"), *at);
  }
  std::optional<int64_t> ttl = RelativeTtl(local_expiry_ms);
  if (!ttl.has_value()) return std::nullopt;
  return std::make_pair(absl::string_view("PX"), *ttl);
}

std::optional<int64_t> ExpiryMapper::RestoreTtl(int64_t local_expiry_ms) const {
  if (!absolute_) return RelativeTtl(local_expiry_ms);
  if (local_expiry_ms <= absl::ToUnixMillis(absl::Now())) return std::nullopt;
  return local_expiry_ms + offset_ms_;
}

TtlProbe ParseTtlProbe(const redis::Reply& keyspace, const redis::Reply& stats, int db) {
  TtlProbe probe;
  if (keyspace.is_error() || stats.is_error()) return probe;  // No INFO: not usable.
  // "db3:keys=120,expires=4,avg_ttl=0"; no line for an empty database.
  const std::string db_line = redis::InfoField(keyspace.str(), absl::StrCat("db", db));
  // No line for a database whose keys are being read: INFO is not telling the truth (a proxy, a
  // restricted view), so it proves nothing.
  probe.valid = !db_line.empty();
  probe.volatile_keys = 0;
  const size_t at = db_line.find("expires=");
  if (at != std::string::npos) {
    (void)absl::SimpleAtoi(db_line.substr(at + 8, db_line.find(',', at) - at - 8),
                           &probe.volatile_keys);
  }
  (void)absl::SimpleAtoi(redis::InfoField(stats.str(), "expired_keys"), &probe.expired);
  (void)absl::SimpleAtoi(redis::InfoField(stats.str(), "evicted_keys"), &probe.evicted);
  return probe;
}

bool NoTtlBetween(const TtlProbe& before, const TtlProbe& after) {
  return before.valid && after.valid && before.volatile_keys == 0 && after.volatile_keys == 0 &&
         before.expired == after.expired && before.evicted == after.evicted;
}

}  // namespace ferry::agent
