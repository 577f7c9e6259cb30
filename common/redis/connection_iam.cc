// Connection's re-AUTH for ElastiCache IAM authentication (see connection.h): apart from the
// transport and the pipeline because it is about logging in, not bytes.

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/redis/connection.h"
#include "common/redis/iam_auth.h"

namespace ferry::redis {
namespace {

// How soon a re-AUTH whose token could not be signed is tried again.
constexpr absl::Duration kReauthRetry = absl::Seconds(30);

}  // namespace

absl::StatusOr<std::string> Connection::LoginPassword() {
  if (!endpoint_.iam.enabled) return endpoint_.password;
  absl::StatusOr<std::string> token = IamAuthToken(endpoint_);
  if (!token.ok()) {
    return Annotate(token.status(), absl::StrCat("IAM authentication to ", endpoint_.Redacted()));
  }
  next_reauth_ = absl::Now() + endpoint_.iam.reauth_interval;
  return token;
}

void Connection::QueueReauth() {
  if (reauth_pending_) return;  // The last one's reply is not read yet.
  absl::StatusOr<std::string> token = IamAuthToken(endpoint_);
  if (!token.ok()) {
    const absl::Duration retry = std::min(kReauthRetry, endpoint_.iam.reauth_interval);
    FERRY_LOG(Warning) << "cannot re-AUTH to " << endpoint_.Redacted() << ": "
                       << token.status().message() << "; trying again in "
                       << absl::FormatDuration(retry);
    next_reauth_ = absl::Now() + retry;
    return;
  }
  // Replies to commands already sent come first; the unsent ones follow the AUTH.
  replies_before_reauth_ = pending_ > unsent_ ? pending_ - unsent_ : 0;
  std::string unsent = std::move(out_);
  out_.clear();
  Append({"AUTH", endpoint_.user, *token});
  out_ += unsent;
  --pending_;  // Not the caller's reply.
  reauth_pending_ = true;
  next_reauth_ = absl::Now() + endpoint_.iam.reauth_interval;
}

absl::Status Connection::ReadReauthReply() {
  reauth_pending_ = false;
  FERRY_ASSIGN_OR_RETURN(Reply reply, ReadNextReply());
  if (!reply.is_error()) return absl::OkStatus();
  // The server's message names no password; the connection is dropped so that it is reopened
  // (and logged in, or refused with a clear error) from scratch.
  return Fail(absl::UnavailableError(absl::StrCat("re-AUTH to ", endpoint_.Redacted(), " as ",
                                                  endpoint_.user, " refused: ", reply.str())));
}

}  // namespace ferry::redis
