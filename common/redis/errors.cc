#include "common/redis/errors.h"

#include <algorithm>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "common/redis/endpoint.h"
#include "common/redis/slot.h"

namespace ferry::redis {
namespace {

using Code = absl::StatusCode;

// Replies whose first word names their kind. Whole words: BUSY is not BUSYKEY or BUSYGROUP.
struct PrefixRow {
  absl::string_view prefix;
  ReplyErrorKind kind;
};
constexpr PrefixRow kPrefixes[] = {
    {"NOAUTH", ReplyErrorKind::kAuth},
    {"WRONGPASS", ReplyErrorKind::kAuth},
    {"NOPERM", ReplyErrorKind::kNoPerm},
    {"OOM", ReplyErrorKind::kOom},
    {"LOADING", ReplyErrorKind::kLoading},
    {"BUSY", ReplyErrorKind::kBusy},
    {"TRYAGAIN", ReplyErrorKind::kTryAgain},
    {"CLUSTERDOWN", ReplyErrorKind::kClusterDown},
    {"MASTERDOWN", ReplyErrorKind::kMasterDown},
    {"READONLY", ReplyErrorKind::kReadOnly},
    {"NOREPLICAS", ReplyErrorKind::kNoReplicas},
    {"MOVED", ReplyErrorKind::kMoved},
    {"ASK", ReplyErrorKind::kAsk},
    {"BUSYKEY", ReplyErrorKind::kBusyKey},
};

// What each kind means for a caller: its status code (which fixes its ErrorClass, see Classify)
// and whether a router resends it by itself (RouterResends).
struct KindRow {
  ReplyErrorKind kind;
  Code code;
  bool router_resends;
};
constexpr KindRow kKinds[] = {
    {ReplyErrorKind::kOther, Code::kInvalidArgument, false},
    {ReplyErrorKind::kAuth, Code::kUnauthenticated, false},
    {ReplyErrorKind::kNoPerm, Code::kPermissionDenied, false},
    {ReplyErrorKind::kUnknownCommand, Code::kPermissionDenied, false},
    {ReplyErrorKind::kOom, Code::kResourceExhausted, false},
    {ReplyErrorKind::kLoading, Code::kUnavailable, true},
    {ReplyErrorKind::kBusy, Code::kUnavailable, false},
    {ReplyErrorKind::kTryAgain, Code::kUnavailable, true},
    {ReplyErrorKind::kClusterDown, Code::kUnavailable, true},
    {ReplyErrorKind::kMasterDown, Code::kUnavailable, true},
    {ReplyErrorKind::kReadOnly, Code::kUnavailable, false},
    {ReplyErrorKind::kNoReplicas, Code::kUnavailable, false},
    {ReplyErrorKind::kMoved, Code::kAborted, false},
    {ReplyErrorKind::kAsk, Code::kAborted, false},
    {ReplyErrorKind::kBusyKey, Code::kAlreadyExists, false},
    {ReplyErrorKind::kPayloadVersion, Code::kUnimplemented, false},
    {ReplyErrorKind::kNoCluster, Code::kInvalidArgument, false},
};

const KindRow& RowOf(ReplyErrorKind kind) {
  for (const KindRow& row : kKinds) {
    if (row.kind == kind) return row;
  }
  return kKinds[0];
}

// The first word of a Redis error reply ("MOVED 3999 10.0.0.1:6379" -> "MOVED").
absl::string_view ErrorPrefix(absl::string_view error) {
  return error.substr(0, std::min(error.find(' '), error.size()));
}

// Older servers, and AUTH sent to a server without a password. The texts name the command,
// never the password we sent.
bool IsAuthText(absl::string_view error) {
  return absl::StartsWith(error, "ERR invalid password") ||
         absl::StartsWith(error, "ERR invalid username-password pair") ||
         absl::StartsWith(error, "ERR Client sent AUTH, but no password is set") ||
         (absl::StartsWith(error, "ERR AUTH") &&
          absl::StrContains(error, "called without any password configured"));
}

}  // namespace

ReplyErrorKind Kind(absl::string_view error) {
  const absl::string_view prefix = ErrorPrefix(error);
  for (const PrefixRow& row : kPrefixes) {
    if (row.prefix == prefix) return row.kind;
  }
  if (IsAuthText(error)) return ReplyErrorKind::kAuth;
  if (absl::StartsWith(error, "ERR unknown command")) return ReplyErrorKind::kUnknownCommand;
  if (IsPayloadVersionError(error)) return ReplyErrorKind::kPayloadVersion;
  if (absl::StrContains(error, "cluster support disabled")) return ReplyErrorKind::kNoCluster;
  return ReplyErrorKind::kOther;
}

absl::Status StatusFromReplyError(absl::string_view error) {
  // The message is the server's text unchanged, for the operator and for ParseRedirect.
  return absl::Status(RowOf(Kind(error)).code,
                      error.empty() ? "empty error reply" : std::string(error));
}

ErrorClass Classify(const absl::Status& status) {
  switch (status.code()) {
    case Code::kUnavailable:
    case Code::kDeadlineExceeded:
      return ErrorClass::kTransient;
    case Code::kAborted:
      return ErrorClass::kRedirect;
    case Code::kUnimplemented:
      return ErrorClass::kVersion;
    case Code::kUnauthenticated:
    case Code::kPermissionDenied:
    case Code::kResourceExhausted:
    case Code::kDataLoss:            // Written data is gone (a target restarted or evicted).
    case Code::kFailedPrecondition:  // The system must change first (a stale lease, a scheme).
      return ErrorClass::kFatal;
    default:
      // ALREADY_EXISTS, INVALID_ARGUMENT and anything unexpected: record the key, go on.
      return ErrorClass::kPerKey;
  }
}

bool MayRetryLater(absl::StatusCode code) {
  const ErrorClass error_class = Classify(absl::Status(code, ""));
  return error_class == ErrorClass::kTransient || error_class == ErrorClass::kRedirect;
}

bool RouterResends(ReplyErrorKind kind) { return RowOf(kind).router_resends; }

std::optional<Redirect> ParseRedirect(absl::string_view error, absl::string_view same_host) {
  const ReplyErrorKind kind = Kind(error);
  if (kind != ReplyErrorKind::kMoved && kind != ReplyErrorKind::kAsk) return std::nullopt;
  const size_t first_space = error.find(' ');
  const size_t second_space = error.find(' ', first_space + 1);
  if (first_space == absl::string_view::npos || second_space == absl::string_view::npos) {
    return std::nullopt;
  }
  Redirect redirect;
  redirect.ask = kind == ReplyErrorKind::kAsk;
  const std::optional<HostPort> address = ParseAddress(error.substr(second_space + 1));
  if (!address.has_value() ||
      !absl::SimpleAtoi(error.substr(first_space + 1, second_space - first_space - 1),
                        &redirect.slot) ||
      redirect.slot < 0 || redirect.slot >= kClusterSlots) {
    return std::nullopt;
  }
  redirect.port = address->port;
  redirect.host =
      address->host.empty() || address->host == "?" ? std::string(same_host) : address->host;
  return redirect;
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
