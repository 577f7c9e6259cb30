#include "common/base/logging.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace ferry {
namespace {

LogLevel LevelFromEnv() {
  const char* env = std::getenv("FERRY_LOG_LEVEL");
  if (env == nullptr) return LogLevel::kInfo;
  absl::StatusOr<LogLevel> level = ParseLogLevel(env);
  return level.ok() ? *level : LogLevel::kInfo;
}

std::atomic<int>& MinLevel() {
  static std::atomic<int> level{static_cast<int>(LevelFromEnv())};
  return level;
}

std::atomic<int> g_format{static_cast<int>(LogFormat::kText)};

// Set once at start (SetLogComponent); read by every line.
std::string& Component() {
  static std::string* component = new std::string;
  return *component;
}

const char* LevelLetter(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "D";
    case LogLevel::kInfo:
      return "I";
    case LogLevel::kWarning:
      return "W";
    case LogLevel::kError:
      return "E";
  }
  return "?";
}

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "unknown";
}

// The length of the UTF-8 sequence at text[i], or 0 when it is not one.
size_t Utf8Length(absl::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char c = byte(i);
  size_t length = c < 0x80           ? 1
                  : (c >> 5) == 0x6  ? 2
                  : (c >> 4) == 0xE  ? 3
                  : (c >> 3) == 0x1E ? 4
                                     : 0;
  if (length == 0 || i + length > text.size()) return 0;
  for (size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  }
  if (length == 2 && c < 0xC2) return 0;  // Overlong.
  return length;
}

}  // namespace

void SetMinLogLevel(LogLevel level) { MinLevel().store(static_cast<int>(level)); }
LogLevel MinLogLevel() { return static_cast<LogLevel>(MinLevel().load()); }

absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view name) {
  const std::string value = absl::AsciiStrToLower(name);
  if (value == "debug") return LogLevel::kDebug;
  if (value == "info") return LogLevel::kInfo;
  if (value == "warning" || value == "warn") return LogLevel::kWarning;
  if (value == "error") return LogLevel::kError;
  return absl::InvalidArgumentError(
      absl::StrCat("log level '", name, "' is not debug, info, warning or error"));
}

void SetLogFormat(LogFormat format) { g_format.store(static_cast<int>(format)); }

absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view name) {
  if (name == "text") return LogFormat::kText;
  if (name == "json") return LogFormat::kJson;
  return absl::InvalidArgumentError(absl::StrCat("log format '", name, "' is not text or json"));
}

void SetLogComponent(absl::string_view component) { Component() = std::string(component); }

void WriteLogLine(LogLevel level, const char* file, int line, absl::string_view message) {
  if (level < MinLogLevel()) return;
  internal::LogMessage(level, file != nullptr ? file : "?", line).stream() << message;
}

namespace internal {

std::string JsonEscape(absl::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7F) {
      absl::StrAppendFormat(&out, "\\u%04x", c);
    } else if (c >= 0x80) {
      const size_t length = Utf8Length(text, i);
      if (length == 0) {
        absl::StrAppendFormat(&out, "\\u%04x", c);  // Not UTF-8: the byte as Latin-1.
        ++i;
        continue;
      }
      out.append(text.data() + i, length);
      i += length;
      continue;
    } else {
      out += static_cast<char>(c);
    }
    ++i;
  }
  return out;
}

LogMessage::LogMessage(LogLevel level, const char* file, int line, LogFields fields)
    : level_(level), file_(file), line_(line), fields_(std::move(fields)) {}

LogMessage::~LogMessage() {
  const char* slash = std::strrchr(file_, '/');
  const char* base = slash != nullptr ? slash + 1 : file_;
  const std::string time =
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  std::string line;
  if (static_cast<LogFormat>(g_format.load()) == LogFormat::kJson) {
    line = absl::StrCat("{\"time\":\"", time, "\",\"level\":\"", LevelName(level_), "\"");
    if (!Component().empty()) {
      absl::StrAppend(&line, ",\"component\":\"", JsonEscape(Component()), "\"");
    }
    if (!fields_.job.empty()) absl::StrAppend(&line, ",\"job\":\"", JsonEscape(fields_.job), "\"");
    if (!fields_.lease.empty()) {
      absl::StrAppend(&line, ",\"lease\":\"", JsonEscape(fields_.lease), "\"");
    }
    absl::StrAppend(&line, ",\"source\":\"", JsonEscape(base), ":", line_, "\",\"message\":\"",
                    JsonEscape(stream_.str()), "\"}\n");
  } else {
    line = absl::StrCat(LevelLetter(level_), " ", time, " ", base, ":", line_, "] ", stream_.str(),
                        "\n");
  }
  // One write per line keeps lines from different threads whole.
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace internal
}  // namespace ferry
