// Connection's handshake (see connection.h): what Open() sends once the transport is up, apart
// from the transport and the pipeline because it decides whether the peer is a Redis server at
// all, and says so.

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/redis/connection.h"
#include "common/redis/errors.h"
#include "common/redis/reply_reader.h"

namespace ferry::redis {

absl::Status Connection::Handshake(const ConnectOptions& options) {
  absl::Status status = HandshakeCommands(options);
  if (status.ok()) return status;
  if (status.code() == absl::StatusCode::kDeadlineExceeded) {
    return absl::DeadlineExceededError(
        absl::StrCat(status.message(), ": no reply within ",
                     absl::FormatDuration(std::min(options.connect_timeout, options.io_timeout)),
                     " of connecting (a stopped server, or not a Redis server)"));
  }
  if (reader_->failed()) {
    return absl::FailedPreconditionError(absl::StrCat(
        endpoint_.Redacted(), " does not answer as a Redis server: ", status.message()));
  }
  return status;
}

absl::Status Connection::HandshakeCommands(const ConnectOptions& options) {
  bool answered = false;  // A reply came back: the peer speaks RESP.
  FERRY_ASSIGN_OR_RETURN(const std::string password, LoginPassword());
  if (!password.empty()) {
    absl::StatusOr<Reply> auth = endpoint_.user.empty()
                                     ? Command({"AUTH", password})
                                     : Command({"AUTH", endpoint_.user, password});
    if (!auth.ok() && broken_) return auth.status();
    if (!auth.ok()) {
      return absl::Status(auth.status().code(),
                          absl::StrCat("cannot log in to ", endpoint_.Redacted(), " as ",
                                       endpoint_.user.empty() ? "default" : endpoint_.user, ": ",
                                       auth.status().message()));
    }
    answered = true;
  }
  if (!options.client_name.empty()) {
    // A refusal is fine (some servers forbid it); a transport failure is not.
    absl::StatusOr<Reply> named = Command({"CLIENT", "SETNAME", options.client_name});
    if (!named.ok() && broken_) return named.status();
    answered = true;
  }
  if (endpoint_.db.has_value() && *endpoint_.db != 0) {
    FERRY_RETURN_IF_ERROR(Annotate(Select(*endpoint_.db), endpoint_.Redacted()));
    answered = true;
  }
  if (!answered) {
    // Any reply will do: an error (NOAUTH...) is for the caller's first command to meet.
    absl::StatusOr<Reply> pong = Command({"PING"});
    if (!pong.ok() && broken_) return pong.status();
  }
  return absl::OkStatus();
}

}  // namespace ferry::redis
