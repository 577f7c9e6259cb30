#pragma once

#include <cstdint>
#include <optional>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/redis/connection.h"

namespace ferry::agent {

// Turns a TTL read on the source into the TTL argument of RESTORE on the target, never later
// than the source's expiry. A relative TTL would be applied when the target runs the command,
// which can be milliseconds after it was computed (a busy or descheduled server), so on
// targets that take RESTORE ... ABSTTL (Redis >= 5) the expiry is sent as an absolute time in
// the target's clock: the source's expiry in this host's clock, plus a lower bound of the
// target's clock offset measured with TIME. Clock skew between the hosts does not matter.
class ExpiryMapper {
 public:
  // Measures `target`'s clock and version. Without a target (dry run) or when the target's
  // version cannot be read, relative TTLs are used with `relative_margin` taken off.
  static absl::StatusOr<ExpiryMapper> Measure(redis::Connection* target);

  // For a key whose PTTL `pttl` (> 0) was asked no earlier than `read_time`: the RESTORE TTL
  // argument, or nullopt when the key has expired by now.
  std::optional<int64_t> RestoreTtl(int64_t pttl, absl::Time read_time) const;
  // The same for `SET key value <option> <value>`: {"PXAT", absolute ms} on targets that take
  // it (Redis >= 6.2), else {"PX", relative ms}.
  std::optional<std::pair<absl::string_view, int64_t>> SetExpiry(int64_t pttl,
                                                                 absl::Time read_time) const;
  // Whether RestoreTtl() returns absolute times (append ABSTTL to RESTORE).
  bool absolute() const { return absolute_; }

  // For relative TTLs: the longest recent wait between computing a TTL and the target's reply.
  void set_relative_margin(absl::Duration margin) { relative_margin_ = margin; }

  // The mapper that is right for both `a` and `b` (two nodes of one cluster target): absolute
  // times only when both take them, with the lower clock offset, so neither node's keys
  // outlive the source's.
  static ExpiryMapper Earliest(const ExpiryMapper& a, const ExpiryMapper& b);

 private:
  bool absolute_ = false;
  bool pxat_ = false;      // SET ... PXAT (Redis >= 6.2).
  int64_t offset_ms_ = 0;  // Lower bound of (target clock - this host's clock).
  absl::Duration relative_margin_ = absl::Milliseconds(20);
};

}  // namespace ferry::agent
