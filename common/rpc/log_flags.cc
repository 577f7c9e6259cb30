#include "common/rpc/log_flags.h"

#include <grpc/support/log.h>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/base/logging.h"

namespace ferry::rpc {
namespace {

// gRPC's own lines (errors by default) go through ferry's log, so that --log-format json holds
// for every line.
void LogGrpcLine(gpr_log_func_args* args) {
  const LogLevel level = args->severity == GPR_LOG_SEVERITY_ERROR  ? LogLevel::kError
                         : args->severity == GPR_LOG_SEVERITY_INFO ? LogLevel::kInfo
                                                                   : LogLevel::kDebug;
  WriteLogLine(level, args->file, args->line, absl::StrCat("grpc: ", args->message));
}

}  // namespace

absl::Status ApplyLogFlag(const std::string& flag, const std::string& value) {
  if (flag == "--log-format") {
    absl::StatusOr<LogFormat> format = ParseLogFormat(value);
    if (!format.ok()) return format.status();
    SetLogFormat(*format);
    if (*format == LogFormat::kJson) gpr_set_log_function(LogGrpcLine);
    return absl::OkStatus();
  }
  absl::StatusOr<LogLevel> level = ParseLogLevel(value);
  if (!level.ok()) return level.status();
  SetMinLogLevel(*level);
  return absl::OkStatus();
}

}  // namespace ferry::rpc
