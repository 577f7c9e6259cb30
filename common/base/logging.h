#pragma once

// The one logging header. Lines go to stderr, as text (`L time file:line] message`) or as JSON
// lines (`{"time":...,"level":...,"component":...,"job":...,"lease":...,"source":...,
// "message":...}`). Never log a password, a URI with credentials or a value: log
// Endpoint::Redacted() and key counts.

#include <sstream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ferry {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };
enum class LogFormat { kText, kJson };

// Lines below this level are dropped. Thread-safe. Default kInfo; FERRY_LOG_LEVEL=debug|info|
// warning|error in the environment overrides it at start.
void SetMinLogLevel(LogLevel level);
LogLevel MinLogLevel();
// "debug", "info", "warning" (or "warn"), "error"; INVALID_ARGUMENT otherwise.
absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view name);

// How lines are written (default text). Set once at start, before other threads log.
void SetLogFormat(LogFormat format);
// "text" or "json"; INVALID_ARGUMENT otherwise.
absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view name);
// The `component` field of JSON lines ("controller", "agent", "cli"); set once at start.
void SetLogComponent(absl::string_view component);

// What a call site knows about the line: JSON lines carry them as `job` and `lease`; text lines
// leave them out (the message says them as it always did).
struct LogFields {
  std::string job;
  std::string lease;
};
inline LogFields LogJob(std::string job_id) { return {std::move(job_id), ""}; }
inline LogFields LogLease(std::string job_id, std::string lease_id) {
  return {std::move(job_id), std::move(lease_id)};
}

// One line from elsewhere (gRPC's log function, for instance), in the format set, when `level`
// is enabled. `file` may be a path; its base name is written.
void WriteLogLine(LogLevel level, const char* file, int line, absl::string_view message);

namespace internal {

class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line, LogFields fields = {});
  ~LogMessage();
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  std::ostream& stream() { return stream_; }

 private:
  const LogLevel level_;
  const char* const file_;
  const int line_;
  const LogFields fields_;
  std::ostringstream stream_;  // The message only.
};

// Swallows the stream when the level is disabled.
struct LogVoidify {
  void operator&(std::ostream&) {}
};

// `text` as the contents of a JSON string: quotes, backslashes and control characters escaped,
// bytes that are not UTF-8 written as \u00XX (so any line parses).
std::string JsonEscape(absl::string_view text);

}  // namespace internal
}  // namespace ferry

#define FERRY_LOG(level) FERRY_LOG_FIELDS(level, ::ferry::LogFields{})

// FERRY_LOG with fields: FERRY_LOG_FIELDS(Info, ::ferry::LogJob(id)) << "planning";
#define FERRY_LOG_FIELDS(level, fields)                                                            \
  (::ferry::LogLevel::k##level < ::ferry::MinLogLevel())                                           \
      ? (void)0                                                                                    \
      : ::ferry::internal::LogVoidify() &                                                          \
            ::ferry::internal::LogMessage(::ferry::LogLevel::k##level, __FILE__, __LINE__, fields) \
                .stream()
