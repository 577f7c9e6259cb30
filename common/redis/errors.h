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

}  // namespace ferry::redis
