#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ferry::redis {

// What a caller should do about a Redis error. DESIGN.md, "Copying a shard".
enum class ErrorClass {
  kTransient,  // Connection lost, timeout, LOADING, BUSY, TRYAGAIN, CLUSTERDOWN: back off, retry.
  kRedirect,   // MOVED, ASK: refresh the slot map or send ASKING.
  kVersion,    // The target cannot read the DUMP payload (older RDB version): per key.
  kPerKey,     // Wrong type, too large, BUSYKEY...: record the key and go on.
  kFatal,      // Auth, NOPERM, OOM, unknown command: stop the job with a clear message.
};

// The one table that maps Redis error replies to absl codes:
//   NOAUTH/WRONGPASS/invalid password -> UNAUTHENTICATED, NOPERM -> PERMISSION_DENIED,
//   unknown command (renamed/disabled) -> PERMISSION_DENIED, OOM -> RESOURCE_EXHAUSTED,
//   LOADING/BUSY/TRYAGAIN/CLUSTERDOWN/MASTERDOWN/READONLY -> UNAVAILABLE,
//   MOVED/ASK -> ABORTED, BUSYKEY -> ALREADY_EXISTS, payload version -> FAILED_PRECONDITION,
//   anything else -> INVALID_ARGUMENT (a per-key problem).
absl::Status StatusFromReplyError(absl::string_view error);

// Classifies a status produced by this library (a reply error or an I/O failure).
ErrorClass Classify(const absl::Status& status);

// True for the error RESTORE gives when the payload comes from a newer Redis.
bool IsPayloadVersionError(absl::string_view error);

// What an ACL refusal (a PERMISSION_DENIED status or NOPERM reply) is about: the command itself
// (also a renamed or disabled command), a key pattern (`~app:*`) or a channel pattern. The
// remedies differ (grant the command vs widen the key patterns), so messages must say which.
enum class Refusal { kCommand, kKey, kChannel };

// Reads the refusal's text: Redis 6.x/7.0 ("this user has no permissions to access one of the
// keys used as arguments") and 7.2+ ("No permissions to access a key") alike; anything that
// names no key or channel counts as the command's.
Refusal ClassifyRefusal(absl::string_view error);

}  // namespace ferry::redis
