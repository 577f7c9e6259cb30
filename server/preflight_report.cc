#include "server/preflight_report.h"

#include <utility>

namespace ferry::server {

absl::string_view SeverityName(Severity severity) {
  switch (severity) {
    case Severity::kError:
      return "error";
    case Severity::kWarning:
      return "warning";
    case Severity::kInfo:
      break;
  }
  return "info";
}

void Findings::Error(absl::string_view check, const absl::Status& status) {
  if (status.ok()) return;
  all_.push_back({Severity::kError, std::string(check), std::string(status.message()),
                  status.code(), /*job_starts=*/false});
}

void Findings::ErrorJobStartsWith(absl::string_view check, const absl::Status& status) {
  if (status.ok()) return;
  all_.push_back({Severity::kError, std::string(check), std::string(status.message()),
                  status.code(), /*job_starts=*/true});
}

void Findings::Warning(absl::string_view check, std::string message) {
  all_.push_back({Severity::kWarning, std::string(check), std::move(message)});
}

void Findings::Info(absl::string_view check, std::string message) {
  all_.push_back({Severity::kInfo, std::string(check), std::move(message)});
}

bool Findings::Ok(absl::string_view check, const absl::Status& status) {
  Error(check, status);
  return status.ok();
}

const Finding* Findings::FirstJobError() const {
  for (const Finding& f : all_) {
    if (f.severity == Severity::kError && !f.job_starts) return &f;
  }
  return nullptr;
}

absl::Status Findings::JobStatus() const {
  const Finding* error = FirstJobError();
  if (error == nullptr) return absl::OkStatus();
  return absl::Status(error->code, error->message);
}

std::vector<std::string> Findings::JobWarnings() const {
  std::vector<std::string> out;
  for (const Finding& f : all_) {
    if (f.severity == Severity::kWarning || (f.severity == Severity::kError && f.job_starts)) {
      out.push_back(f.message);
    }
  }
  return out;
}

absl::string_view CheckOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kUnauthenticated:
      return check::kConnect;
    case absl::StatusCode::kPermissionDenied:
      return check::kPermissions;
    case absl::StatusCode::kFailedPrecondition:
      return check::kCluster;
    default:
      return check::kServer;
  }
}

}  // namespace ferry::server
