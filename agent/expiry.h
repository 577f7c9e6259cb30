#pragma once

// Key expiry across two servers and this host: TTLs are never extended, and never shortened by
// more than the uncertainty of a measurement (DESIGN.md, "Honesty rules").
//
// The reader turns what the source says of a key's expiry into the earliest moment, in this
// host's clock (Unix ms), at which the key can expire: from PEXPIRETIME (Redis >= 7.0) through
// the source's clock offset (SourceClock), which does not depend on how long a reply took; from
// PTTL through the time the command was sent (the answer is only known to come later), with the
// batch's TTLs read again when the round trip took too long. The writer turns that moment into
// the target's terms (ExpiryMapper).

#include <cstdint>
#include <optional>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/redis/capabilities.h"
#include "common/redis/connection.h"

namespace ferry::agent {

// Expiry values in a batch besides a time: the key has none, or is gone.
inline constexpr int64_t kNoExpiry = -1;
inline constexpr int64_t kVanished = -2;

// A source server's clock against this host's, from TIME.
class SourceClock {
 public:
  // The tightest of a few TIME round trips on `source` (no replies pending). PERMISSION_DENIED
  // when TIME is refused.
  static absl::StatusOr<SourceClock> Measure(redis::Connection& source);
  // For tests: the source's clock is at most `max_offset_ms` ahead of this host's.
  static SourceClock WithMaxOffset(int64_t max_offset_ms) { return SourceClock(max_offset_ms); }

  // The earliest moment in this host's clock (Unix ms) that the source's Unix ms `source_ms`
  // can be: a key never outlives the source.
  int64_t ToLocalMs(int64_t source_ms) const { return source_ms - max_offset_ms_; }
  int64_t max_offset_ms() const { return max_offset_ms_; }

 private:
  explicit SourceClock(int64_t max_offset_ms) : max_offset_ms_(max_offset_ms) {}
  int64_t max_offset_ms_;  // Upper bound of (source clock - this host's clock), rounded up.
};

// How a source connection tells key expiries: with PEXPIRETIME and the source's clock when the
// capability table promises it and the server answers it (a probe; renamed or refused commands
// fall back), else nullopt: PTTL. Transport errors are returned.
absl::StatusOr<std::optional<SourceClock>> AbsoluteExpiryClock(redis::Connection& source);
// The same for a source whose capabilities are known.
absl::StatusOr<std::optional<SourceClock>> AbsoluteExpiryClock(redis::Connection& source,
                                                               const redis::Capabilities& caps);

// A key's expiry from one TTL reply: `value` of PEXPIRETIME (with `clock`) or of PTTL sent at
// `sent` (without), as the earliest local Unix ms, or kNoExpiry / kVanished.
int64_t LocalExpiry(int64_t value, const std::optional<SourceClock>& clock, absl::Time sent);

// Turns a key's expiry (earliest local Unix ms) into the TTL argument of RESTORE or SET on the
// target, never later than the source's expiry. A relative TTL would be applied when the target
// runs the command, which can be milliseconds after it was computed (a busy or descheduled
// server), so on targets that take RESTORE ... ABSTTL the expiry is sent as an absolute time in
// the target's clock: the local expiry plus a lower bound of the target's clock offset measured
// with TIME. Clock skew between the hosts does not matter.
class ExpiryMapper {
 public:
  // Measures `target`'s clock and asks the capability table what it takes. Without a target
  // (dry run) or when the target's version cannot be read, relative TTLs are used with
  // `relative_margin` taken off.
  static absl::StatusOr<ExpiryMapper> Measure(redis::Connection* target);

  // For a key that expires at `local_expiry_ms` (this host's clock, > 0): the RESTORE TTL
  // argument, or nullopt when the key has expired by now.
  std::optional<int64_t> RestoreTtl(int64_t local_expiry_ms) const;
  // The same for `SET key value <option> <value>`: {"PXAT", absolute ms} on targets that take
  // it, else {"PX", relative ms}.
  std::optional<std::pair<absl::string_view, int64_t>> SetExpiry(int64_t local_expiry_ms) const;
  // Whether RestoreTtl() returns absolute times (append ABSTTL to RESTORE).
  bool absolute() const { return absolute_; }

  // For relative TTLs: the longest recent wait between computing a TTL and the target's reply.
  void set_relative_margin(absl::Duration margin) { relative_margin_ = margin; }

  // The mapper that is right for both `a` and `b` (two nodes of one cluster target): absolute
  // times only when both take them, with the lower clock offset, so neither node's keys
  // outlive the source's.
  static ExpiryMapper Earliest(const ExpiryMapper& a, const ExpiryMapper& b);

  // For tests: a target that takes absolute times (and PXAT) with this clock offset.
  static ExpiryMapper Absolute(int64_t offset_ms);

 private:
  std::optional<int64_t> RelativeTtl(int64_t local_expiry_ms) const;

  bool absolute_ = false;
  bool pxat_ = false;      // SET ... PXAT.
  int64_t offset_ms_ = 0;  // Lower bound of (target clock - this host's clock).
  absl::Duration relative_margin_ = absl::Milliseconds(20);
};

// What INFO keyspace and INFO stats say of one database's TTLs at one moment: two of them, before
// and after some reads, can prove that no key read had a TTL (NoTtlBetween), which spares a TTL
// command per key.
struct TtlProbe {
  bool valid = false;          // INFO answered, with a line for the database.
  int64_t volatile_keys = -1;  // Keys with a TTL in the database.
  int64_t expired = -1;        // expired_keys and evicted_keys of INFO stats.
  int64_t evicted = -1;
};

// From the replies of `INFO keyspace` and `INFO stats` (either an error: not valid).
TtlProbe ParseTtlProbe(const redis::Reply& keyspace, const redis::Reply& stats, int db);

// A key that had a TTL when it was read would, at the second probe, still have it (volatile
// keys > 0), or have expired or been evicted (the counters moved), or have been written to
// since (a change after the read, as with any key changed during a copy).
bool NoTtlBetween(const TtlProbe& before, const TtlProbe& after);

}  // namespace ferry::agent
