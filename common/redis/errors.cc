#include "common/redis/errors.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace ferry::redis {
namespace {

// The first word of a Redis error reply ("MOVED 3999 10.0.0.1:6379" -> "MOVED"): Redis puts
// the error class there.
absl::string_view ErrorPrefix(absl::string_view error) {
  const size_t space = error.find(' ');
  return space == absl::string_view::npos ? error : error.substr(0, space);
}

bool IsAuthError(absl::string_view error, absl::string_view prefix) {
  if (prefix == "NOAUTH" || prefix == "WRONGPASS") return true;
  // Older servers, and AUTH sent to a server without a password. The texts name the command,
  // never the password we sent.
  return absl::StartsWith(error, "ERR invalid password") ||
         absl::StartsWith(error, "ERR invalid username-password pair") ||
         absl::StartsWith(error, "ERR Client sent AUTH, but no password is set") ||
         (absl::StartsWith(error, "ERR AUTH") &&
          absl::StrContains(error, "called without any password configured"));
}

// Errors after which the same command can succeed later on the same or another node.
bool IsTransientPrefix(absl::string_view prefix) {
  return prefix == "LOADING" || prefix == "BUSY" || prefix == "TRYAGAIN" ||
         prefix == "CLUSTERDOWN" || prefix == "MASTERDOWN" || prefix == "READONLY" ||
         prefix == "NOREPLICAS";
}

absl::StatusCode CodeForReplyError(absl::string_view error) {
  const absl::string_view prefix = ErrorPrefix(error);
  if (IsAuthError(error, prefix)) return absl::StatusCode::kUnauthenticated;
  if (prefix == "NOPERM") return absl::StatusCode::kPermissionDenied;
  // A command renamed or disabled by the operator (ElastiCache) reads as unknown.
  if (absl::StartsWith(error, "ERR unknown command")) return absl::StatusCode::kPermissionDenied;
  if (prefix == "OOM") return absl::StatusCode::kResourceExhausted;
  if (IsTransientPrefix(prefix)) return absl::StatusCode::kUnavailable;
  if (prefix == "MOVED" || prefix == "ASK") return absl::StatusCode::kAborted;
  if (prefix == "BUSYKEY") return absl::StatusCode::kAlreadyExists;
  if (IsPayloadVersionError(error)) return absl::StatusCode::kFailedPrecondition;
  return absl::StatusCode::kInvalidArgument;
}

}  // namespace

absl::Status StatusFromReplyError(absl::string_view error) {
  // The message is the server's text unchanged, so callers can parse MOVED/ASK targets.
  return absl::Status(CodeForReplyError(error),
                      error.empty() ? "empty error reply" : std::string(error));
}

ErrorClass Classify(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return ErrorClass::kTransient;
    case absl::StatusCode::kAborted:
      return ErrorClass::kRedirect;
    case absl::StatusCode::kFailedPrecondition:
      return ErrorClass::kVersion;
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kDataLoss:  // Written data is gone (a target restarted or evicted).
      return ErrorClass::kFatal;
    default:
      // ALREADY_EXISTS, INVALID_ARGUMENT and anything unexpected: record the key, go on.
      return ErrorClass::kPerKey;
  }
}

bool IsPayloadVersionError(absl::string_view error) {
  return absl::StrContains(error, "DUMP payload version or checksum are wrong") ||
         absl::StrContains(error, "Bad data format");
}

Refusal ClassifyRefusal(absl::string_view error) {
  // 7.2 capitalised the texts ("No permissions to access a key").
  const std::string text = absl::AsciiStrToLower(error);
  if (absl::StrContains(text, "permissions to access one of the keys") ||
      absl::StrContains(text, "permissions to access a key")) {
    return Refusal::kKey;
  }
  if (absl::StrContains(text, "permissions to access one of the channels") ||
      absl::StrContains(text, "permissions to access a channel")) {
    return Refusal::kChannel;
  }
  return Refusal::kCommand;
}

}  // namespace ferry::redis
