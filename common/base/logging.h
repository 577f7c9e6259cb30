#pragma once

// The one logging header. Lines go to stderr as `LEVEL time file:line message`. Never log a
// password, a URI with credentials or a value: log Endpoint::Redacted() and key counts.

#include <sstream>
#include <string>

namespace ferry {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Lines below this level are dropped. Thread-safe. Default kInfo; FERRY_LOG_LEVEL=debug|info|
// warning|error in the environment overrides it at start.
void SetMinLogLevel(LogLevel level);
LogLevel MinLogLevel();

namespace internal {

class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

// Swallows the stream when the level is disabled.
struct LogVoidify {
  void operator&(std::ostream&) {}
};

}  // namespace internal
}  // namespace ferry

#define FERRY_LOG(level)                                                                   \
  (::ferry::LogLevel::k##level < ::ferry::MinLogLevel())                                   \
      ? (void)0                                                                            \
      : ::ferry::internal::LogVoidify() &                                                  \
            ::ferry::internal::LogMessage(::ferry::LogLevel::k##level, __FILE__, __LINE__) \
                .stream()
