#include "agent/expiry.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "common/base/status_macros.h"

namespace ferry::agent {

absl::StatusOr<ExpiryMapper> ExpiryMapper::Measure(redis::Connection* target) {
  ExpiryMapper mapper;
  if (target == nullptr) return mapper;
  absl::StatusOr<redis::Reply> info = target->Command({"INFO", "server"});
  if (!info.ok()) {
    if (info.status().code() == absl::StatusCode::kPermissionDenied) return mapper;
    return info.status();
  }
  const std::pair<int, int> version =
      redis::MajorMinor(redis::InfoField(info->str(), "redis_version"));
  if (version < std::make_pair(5, 0)) return mapper;
  absl::StatusOr<redis::Reply> time = target->Command({"TIME"});
  const absl::Time after = absl::Now();
  if (!time.ok()) {
    if (time.status().code() == absl::StatusCode::kPermissionDenied) return mapper;
    return time.status();
  }
  int64_t seconds = 0, micros = 0;
  if (time->size() != 2 || !absl::SimpleAtoi(time->element(0).str(), &seconds) ||
      !absl::SimpleAtoi(time->element(1).str(), &micros)) {
    return mapper;
  }
  // The target read its clock before `after` (ours): the offset is at least
  // its reading minus `after`.
  const int64_t target_us = seconds * 1000000 + micros;
  const int64_t offset_us = target_us - absl::ToUnixMicros(after);
  mapper.offset_ms_ = offset_us >= 0 ? offset_us / 1000 : -((-offset_us + 999) / 1000);
  mapper.absolute_ = true;
  mapper.pxat_ = version >= std::make_pair(6, 2);
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

std::optional<std::pair<absl::string_view, int64_t>> ExpiryMapper::SetExpiry(
    int64_t pttl, absl::Time read_time) const {
  if (pxat_) {
    std::optional<int64_t> at = RestoreTtl(pttl, read_time);
    if (!at.has_value()) return std::nullopt;
    return std::make_pair(absl::string_view("PXAT"), *at);
  }
  const int64_t ttl = absl::ToUnixMillis(read_time) + pttl - absl::ToUnixMillis(absl::Now()) -
                      absl::ToInt64Milliseconds(relative_margin_) - 1;
  if (ttl <= 0) return std::nullopt;
  return std::make_pair(absl::string_view("PX"), ttl);
}

std::optional<int64_t> ExpiryMapper::RestoreTtl(int64_t pttl, absl::Time read_time) const {
  // The source answered after read_time, so its expiry is no earlier than this (this host's
  // clock, rounded down). PTTL itself is rounded down by the server.
  const int64_t expiry_ms = absl::ToUnixMillis(read_time) + pttl;
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  if (absolute_) {
    if (expiry_ms <= now_ms) return std::nullopt;
    return expiry_ms + offset_ms_;
  }
  const int64_t ttl = expiry_ms - now_ms - absl::ToInt64Milliseconds(relative_margin_) - 1;
  if (ttl <= 0) return std::nullopt;
  return ttl;
}

}  // namespace ferry::agent
