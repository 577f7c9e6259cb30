// Connection's handshake (see connection.h): what Open() sends once the transport is up, apart
// from the transport and the pipeline because it decides whether the peer is a Redis server at
// all, and says so.

#include <algorithm>
#include <string>
#include <vector>

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
  FERRY_ASSIGN_OR_RETURN(const std::string password, LoginPassword());
  // The login, the name and the database in one pipeline: one round trip, where a far server
  // cost one per command for every connection a shard opens. After a refused login the others
  // answer NOAUTH: only the login's refusal is told.
  enum class Step { kAuth, kName, kSelect, kPing };
  std::vector<Step> steps;
  if (!password.empty()) {
    if (endpoint_.user.empty()) {
      Append({"AUTH", password});
    } else {
      Append({"AUTH", endpoint_.user, password});
    }
    steps.push_back(Step::kAuth);
  }
  if (!options.client_name.empty()) {
    Append({"CLIENT", "SETNAME", options.client_name});
    steps.push_back(Step::kName);
  }
  const int db = endpoint_.db.value_or(0);
  const std::string db_arg = std::to_string(db);
  if (db != 0) {
    Append({"SELECT", db_arg});
    steps.push_back(Step::kSelect);
  }
  // Any reply will do: an error (NOAUTH...) is for the caller's first command to meet.
  if (steps.empty()) {
    Append({"PING"});
    steps.push_back(Step::kPing);
  }
  absl::Status first_error;
  for (const Step step : steps) {
    FERRY_ASSIGN_OR_RETURN(const Reply reply, ReadReply());  // Transport: the connection broke.
    if (!reply.is_error()) {
      if (step == Step::kSelect) db_ = db;
      continue;
    }
    if (!first_error.ok()) continue;
    const absl::Status status = StatusFromReplyError(reply.str());
    if (step == Step::kAuth) {
      first_error = absl::Status(
          status.code(), absl::StrCat("cannot log in to ", endpoint_.Redacted(), " as ",
                                      endpoint_.user.empty() ? "default" : endpoint_.user, ": ",
                                      Annotate(status, "AUTH").message()));
    } else if (step == Step::kSelect) {
      first_error = Annotate(Annotate(status, "SELECT"), endpoint_.Redacted());
    }
    // A refused CLIENT SETNAME is fine (some servers forbid it); so is any answer to PING.
  }
  return first_error;
}

}  // namespace ferry::redis
