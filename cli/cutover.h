#pragma once

// The end of a live job: `ferry cutover JOB`, the verification after a cutover, and what
// `ferry migrate --live` tells the operator while it follows the source.

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "cli/client.h"
#include "cli/job_options.h"
#include "cli/progress.h"
#include "cli/watch.h"
#include "ferry/v1/ferry.pb.h"

namespace ferry::cli {

// `ferry cutover`'s exit code when the cutover could not converge (writers still running, or
// its timeout): the job is back in LIVE and still follows the source.
inline constexpr int kExitNotConverged = 4;

struct CutoverOptions {
  CutoverVerify verify = CutoverVerify::kQuick;
  uint32_t timeout_seconds = 0;  // 0: wire::kDefaultCutoverTimeoutSeconds.
  ProgressMode progress = ProgressMode::kNone;
  bool json = false;
};

ferry::v1::CutoverJobRequest CutoverRequest(const std::string& job_id,
                                            const CutoverOptions& options);

// How a cutover ended, for its report.
struct CutoverOutcome {
  std::string job_id;
  ferry::v1::Job job;         // The last update: CUTOVER_READY, LIVE (not converged), or ended.
  absl::Duration elapsed;     // From the request to that update.
  std::string verify_report;  // JSON: the verification's report object; empty when none.
};

// Text: "cutover ready in 3.2s: converged ..." or "cutover did not converge in 60.0s: <why>"
// and what to do; the verification's text report follows it separately. JSON: one object
// {"kind":"cutover","job_id":..,"state":..,"converged":..,"seconds":..,"error":..,"live":{..},
// "verify":{..}|null}.
std::string FormatCutover(const CutoverOutcome& outcome, bool json);

// `ferry cutover`: asks for the cutover, follows it (the live line on stderr), and once it is
// ready follows the verification the controller submitted, printing the report. Returns 0
// converged (and verified equal), 1 differences, kExitNotConverged, 130 interrupted (the
// cutover goes on), else as ExitCodeFor.
int RunCutover(ControllerClient& client, const std::string& job_id, const CutoverOptions& options,
               std::atomic<bool>* stop);

// The verification after the cutover of `ready` (CUTOVER_READY) converged: the controller's
// (Job.live.verify_job_id, waited for up to `wait`), followed with WatchJob; when there is
// none, or it was quick where `wanted` is full, one submitted from `request` (ferry migrate,
// which holds the passwords; nullptr submits none). Returns the verification's exit code (0
// when none is wanted nor found).
int FollowCutoverVerification(ControllerClient& client, const ferry::v1::Job& ready,
                              CutoverVerify wanted, const JobRequest* request, absl::Duration wait,
                              const WatchOptions& watch, std::atomic<bool>* stop);

// The address a `listen` address serves once bound to `port` ("127.0.0.1:0" -> port).
std::string ServedAddress(const std::string& listen, int port);

// The client flags that reach the controller `migrate --listen` serves: "--controller ADDR",
// with "--tls-ca FILE" and "--token-file FILE" placeholders when it needs them.
std::string ClientFlagsFor(const std::string& address, const ServeRequest& serve);

// How to cut over the live job `job_id` of ferry migrate: with `client_flags` (ClientFlagsFor),
// the ferry cutover command; without (no --listen), how to restart with --listen from the
// state file `state_path`.
std::string CutoverHint(const std::string& job_id, const std::string& client_flags,
                        const std::string& state_path);

// ferry migrate --live: what the operator must hear during the live phase, on stderr: the
// snapshot done (with `hint`), a cutover starting, a cutover that did not converge. For
// WatchOptions::on_update.
class LiveNotices {
 public:
  LiveNotices(std::string hint, bool bar) : hint_(std::move(hint)), bar_(bar) {}
  void operator()(const ferry::v1::Job& job);

 private:
  std::string hint_;
  bool bar_;
  ferry::v1::JobState last_state_ = ferry::v1::JOB_STATE_UNSPECIFIED;
  std::string last_error_;
};

}  // namespace ferry::cli
