#pragma once

// What the checks before a copy found. A job's planning (PlanCopy) and `ferry preflight`
// (RunPreflight) run the same checks into a Findings: the job stops at the first error and
// stores the warnings on the job; preflight goes on where later checks can still run and
// reports everything.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/planner.h"

namespace ferry::server {

enum class Severity { kError, kWarning, kInfo };

// "error", "warning", "info".
absl::string_view SeverityName(Severity severity);

// The checks, as findings name them (Finding::check, `ferry preflight --output json`).
namespace check {
inline constexpr absl::string_view kConnect = "connect";          // reachability, TLS, AUTH
inline constexpr absl::string_view kPermissions = "permissions";  // every command the job sends
inline constexpr absl::string_view kServer = "server";            // engine, version, INFO
inline constexpr absl::string_view kCluster = "cluster";          // mode, topology, slots
inline constexpr absl::string_view kDatabases = "databases";      // which databases go where
inline constexpr absl::string_view kCopyPath = "copy-path";       // DUMP/RESTORE or type by type
inline constexpr absl::string_view kMemory = "memory";            // fit and eviction policy
inline constexpr absl::string_view kTargetKeys = "target-keys";   // a target that is not empty
inline constexpr absl::string_view kNotifications = "notifications";  // --live
inline constexpr absl::string_view kEstimate = "estimate";            // preflight only
}  // namespace check

struct Finding {
  Severity severity = Severity::kInfo;
  std::string check;    // One of check::k*.
  std::string message;  // Never a password or a value.
  // Errors: the code the job fails with (ferry migrate's exit code follows it).
  absl::StatusCode code = absl::StatusCode::kOk;
  // An error the job starts with and meets only later (a target that fills up under
  // noeviction stops the copy with OOM): the job stores it as a warning.
  bool job_starts = false;
};

// The findings of one run of the checks. Not thread-safe.
class Findings {
 public:
  // `collect_all`: preflight's run; otherwise a job's, which stops at its first error.
  explicit Findings(bool collect_all) : collect_all_(collect_all) {}

  void Error(absl::string_view check, const absl::Status& status);
  // An error the job starts with all the same (Finding::job_starts).
  void ErrorJobStartsWith(absl::string_view check, const absl::Status& status);
  void Warning(absl::string_view check, std::string message);
  void Info(absl::string_view check, std::string message);
  // Records a non-OK `status` as an error of `check`; returns status.ok().
  bool Ok(absl::string_view check, const absl::Status& status);

  bool collect_all() const { return collect_all_; }
  // Whether the checks stop here: a job's run that found an error that stops the job.
  bool Stop() const { return !collect_all_ && FirstJobError() != nullptr; }
  // The first error that keeps the job from starting, as the job fails with it; OK if none.
  absl::Status JobStatus() const;
  // What the job stores as warnings: its warnings and the errors it starts with.
  std::vector<std::string> JobWarnings() const;
  const std::vector<Finding>& all() const { return all_; }

 private:
  const Finding* FirstJobError() const;

  bool collect_all_;
  std::vector<Finding> all_;
};

// The check an error that ends a side's inspection belongs to: connect (cannot connect, TLS,
// AUTH), permissions, cluster (topology), else server.
absl::string_view CheckOf(const absl::Status& status);

// `ferry preflight`'s answer.
struct PreflightReport {
  std::vector<Finding> findings;
  uint64_t source_keys = 0;  // In the databases the job copies.
  size_t shards = 0;         // The plan's, when nothing stopped planning.
};

// Every check a job with `request` would run (the same code as PlanCopy), collecting all
// findings, plus what only preflight says: an estimate of the copy's duration from a sample
// of source keys read as the copy reads them (SCAN, MEMORY USAGE, PTTL, DUMP). With
// request.no_writes nothing is written to either side but request.probe_key. May block on
// the network for as long as the checks take.
PreflightReport RunPreflight(const PlanRequest& request);

}  // namespace ferry::server
