#include "cli/cutover.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "cli/live.h"
#include "proto/wire/job_defaults.h"
#include "proto/wire/job_state.h"

namespace ferry::cli {
namespace {

using ferry::v1::Job;

// Between the answer to CutoverJob and CUTOVER, or CUTOVER_READY and Job.live.verify_job_id,
// the controller may take a moment; how often the job is read meanwhile.
constexpr absl::Duration kPollInterval = absl::Milliseconds(200);
// ferry cutover: how long the controller's verification may take to be named.
constexpr absl::Duration kVerifyNamedWithin = absl::Seconds(30);

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "error: %s\n", std::string(status.message()).c_str());
  const int code = ExitCodeFor(status);
  return code == 0 ? 1 : code;
}

std::string Seconds(absl::Duration d) { return absl::StrFormat("%.1fs", absl::ToDoubleSeconds(d)); }

// The cutover asked for at `asked` has an answer in `job`: ready, back to LIVE (once the job
// was seen cutting over, or with a new cutover error), or ended. A job that never starts
// cutting over is given the cutover's timeout and a grace.
class CutoverDecided {
 public:
  CutoverDecided(const Job& before, const Job& answer, uint32_t timeout_seconds)
      : prior_error_(before.live().cutover_error()),
        give_up_(absl::Now() + absl::Seconds(timeout_seconds) + absl::Seconds(15)),
        cutting_over_(answer.state() == ferry::v1::JOB_STATE_CUTOVER) {}
  bool operator()(const Job& job) {
    if (job.state() == ferry::v1::JOB_STATE_CUTOVER) cutting_over_ = true;
    if (WatchEnds(job.state())) return true;
    if (job.state() != ferry::v1::JOB_STATE_LIVE) return false;
    const std::string& error = job.live().cutover_error();
    return cutting_over_ || (!error.empty() && error != prior_error_) || absl::Now() > give_up_;
  }

 private:
  std::string prior_error_;
  absl::Time give_up_;
  bool cutting_over_;
};

std::string CutoverText(const CutoverOutcome& o) {
  const Job& job = o.job;
  const ferry::v1::LiveProgress& live = job.live();
  if (job.state() == ferry::v1::JOB_STATE_CUTOVER_READY) {
    return absl::StrCat("cutover ready in ", Seconds(o.elapsed), ": job ", o.job_id,
                        " converged, every write made before the cutover is on the target\n",
                        LiveReport(live));
  }
  if (job.state() == ferry::v1::JOB_STATE_LIVE) {
    const std::string why =
        live.cutover_error().empty() ? "the controller did not start it" : live.cutover_error();
    return absl::StrCat("cutover did not converge in ", Seconds(o.elapsed), ": ", why, "\njob ",
                        o.job_id,
                        " is live again and follows the source: stop the writers, then run "
                        "ferry cutover ",
                        o.job_id, " again\n");
  }
  return absl::StrCat("cutover of job ", o.job_id, " ended with the job ", StateName(job),
                      job.error().empty() ? "" : absl::StrCat(": ", job.error()), "\n");
}

}  // namespace

ferry::v1::CutoverJobRequest CutoverRequest(const std::string& job_id,
                                            const CutoverOptions& options) {
  ferry::v1::CutoverJobRequest request;
  request.set_job_id(job_id);
  request.set_timeout_seconds(options.timeout_seconds);
  request.set_no_verify(options.verify == CutoverVerify::kNone);
  request.set_verify_mode(options.verify == CutoverVerify::kFull ? ferry::v1::VERIFY_MODE_FULL
                                                                 : ferry::v1::VERIFY_MODE_QUICK);
  return request;
}

std::string FormatCutover(const CutoverOutcome& o, bool json) {
  if (!json) return CutoverText(o);
  const Job& job = o.job;
  const bool converged = job.state() == ferry::v1::JOB_STATE_CUTOVER_READY;
  std::string error;
  if (job.state() == ferry::v1::JOB_STATE_LIVE) {
    error = job.live().cutover_error().empty() ? "the controller did not start the cutover"
                                               : job.live().cutover_error();
  } else if (!converged) {
    error = job.error().empty() ? absl::StrCat("the job ended ", StateName(job)) : job.error();
  }
  const std::string verify(absl::StripTrailingAsciiWhitespace(o.verify_report));
  return absl::StrCat(
      "{\"kind\":\"cutover\",\"job_id\":", JsonString(o.job_id),
      ",\"state\":", JsonString(StateName(job)), ",\"converged\":", converged ? "true" : "false",
      absl::StrFormat(",\"seconds\":%.3f", absl::ToDoubleSeconds(o.elapsed)),
      ",\"error\":", error.empty() ? "null" : JsonString(error), ",\"live\":", LiveJson(job.live()),
      ",\"verify\":", verify.empty() ? "null" : verify, "}\n");
}

int FollowCutoverVerification(ControllerClient& client, const Job& ready, CutoverVerify wanted,
                              const JobRequest* request, absl::Duration wait,
                              const WatchOptions& watch, std::atomic<bool>* stop) {
  std::string verify_id = ready.live().verify_job_id();
  for (const absl::Time deadline = absl::Now() + wait;
       verify_id.empty() && absl::Now() < deadline && !stop->load();) {
    absl::SleepFor(kPollInterval);
    absl::StatusOr<Job> job = client.Get(ready.id());
    if (job.ok()) verify_id = job->live().verify_job_id();
  }
  if (stop->load()) return 130;
  bool quick_only = false;
  if (!verify_id.empty()) {
    if (!watch.json) std::fprintf(stderr, "verifying: job %s\n", verify_id.c_str());
    const int code = WatchJob(client, verify_id, watch, stop);
    absl::StatusOr<Job> verify = client.Get(verify_id);
    quick_only = verify.ok() && verify->spec().verify_mode() == ferry::v1::VERIFY_MODE_QUICK;
    if (code != 0 || wanted != CutoverVerify::kFull || !quick_only || request == nullptr) {
      return code;
    }
  }
  if (wanted == CutoverVerify::kNone) return 0;
  if (request == nullptr) {
    return Fail(
        absl::InternalError(absl::StrCat("the controller named no verification of job ", ready.id(),
                                         " (Job.live.verify_job_id); verify with ferry submit "
                                         "--verify-only and the job's options")));
  }
  JobRequest verify = *request;
  verify.live = false;
  verify.verify = true;
  verify.verify_full = wanted == CutoverVerify::kFull;
  absl::StatusOr<std::string> id = client.Submit(JobSpecFromRequest(verify));
  if (!id.ok()) return Fail(id.status());
  if (!watch.json) {
    std::fprintf(stderr, "verifying (%s, --cutover-verify %s): job %s\n",
                 quick_only ? "the cutover's was quick" : "the cutover asked for none",
                 verify.verify_full ? "full" : "quick", id->c_str());
  }
  return WatchJob(client, *id, watch, stop);
}

int RunCutover(ControllerClient& client, const std::string& job_id, const CutoverOptions& options,
               std::atomic<bool>* stop) {
  absl::StatusOr<Job> before = client.Get(job_id);
  if (!before.ok()) return Fail(before.status());
  const absl::Time start = absl::Now();
  absl::StatusOr<Job> answer = client.Cutover(CutoverRequest(job_id, options));
  if (!answer.ok()) return Fail(answer.status());
  const uint32_t timeout =
      options.timeout_seconds > 0 ? options.timeout_seconds : wire::kDefaultCutoverTimeoutSeconds;
  if (!options.json) {
    std::fprintf(stderr,
                 "cutover of job %s: waiting for the markers to come back through every "
                 "subscription, then draining the dirty keys (gives up after %us)\n",
                 job_id.c_str(), timeout);
  }
  CutoverDecided decided(*before, *answer, timeout);
  CutoverOutcome outcome;
  outcome.job_id = job_id;
  outcome.job = *answer;
  if (!decided(*answer)) {
    absl::Mutex mu;
    Job latest = *answer;
    ProgressDisplay display(options.progress, [&] {
      absl::MutexLock lock(&mu);
      return SnapshotOfJob(latest, start);
    });
    display.Start();
    absl::StatusOr<Job> last = client.Watch(
        job_id,
        [&](const Job& job) {
          absl::MutexLock lock(&mu);
          latest = job;
        },
        stop, [&](const Job& job) { return decided(job); });
    display.Stop();
    if (!last.ok() && last.status().code() == absl::StatusCode::kCancelled) {
      std::fprintf(stderr, "stopped watching; the cutover of job %s goes on (ferry status %s)\n",
                   job_id.c_str(), job_id.c_str());
      return 130;
    }
    if (!last.ok()) return Fail(last.status());
    outcome.job = *last;
  }
  outcome.elapsed = absl::Now() - start;
  const ferry::v1::JobState state = outcome.job.state();
  if (state != ferry::v1::JOB_STATE_CUTOVER_READY) {
    std::fputs(FormatCutover(outcome, options.json).c_str(), stdout);
    if (state == ferry::v1::JOB_STATE_LIVE) return kExitNotConverged;
    const int code = ExitCodeForJob(outcome.job);
    return code == 0 ? 1 : code;
  }
  if (!options.json) std::fputs(FormatCutover(outcome, false).c_str(), stdout);
  std::fflush(stdout);
  WatchOptions watch;
  watch.progress = options.progress;
  watch.json = options.json;
  if (options.json) watch.report = &outcome.verify_report;
  int code = 0;
  if (options.verify != CutoverVerify::kNone) {
    code = FollowCutoverVerification(client, outcome.job, options.verify, nullptr,
                                     kVerifyNamedWithin, watch, stop);
  }
  if (options.json) std::fputs(FormatCutover(outcome, true).c_str(), stdout);
  return code;
}

std::string ServedAddress(const std::string& listen, int port) {
  const size_t colon = listen.rfind(':');
  if (listen.rfind("unix:", 0) == 0 || colon == std::string::npos || port <= 0) return listen;
  return absl::StrCat(listen.substr(0, colon + 1), port);
}

std::string ClientFlagsFor(const std::string& address, const ServeRequest& serve) {
  std::string out = absl::StrCat("--controller ", address);
  if (!serve.tls_cert.empty()) absl::StrAppend(&out, " --tls-ca FILE");
  if (!serve.token.empty()) absl::StrAppend(&out, " --token-file FILE");
  return out;
}

std::string CutoverHint(const std::string& job_id, const std::string& client_flags,
                        const std::string& state_path) {
  if (!client_flags.empty()) {
    return absl::StrCat("to cut over, stop the writers, then from another shell: ferry cutover ",
                        client_flags, " ", job_id);
  }
  return absl::StrCat(
      "to cut over, ferry migrate must serve the controller API (--listen): Ctrl-C keeps the "
      "state in ",
      state_path, "; run the same command with --state ", state_path,
      " --listen 127.0.0.1:7700, stop the writers, then ferry cutover --controller "
      "127.0.0.1:7700 ",
      job_id);
}

void LiveNotices::operator()(const Job& job) {
  const char* clear = bar_ ? "\r\033[K" : "";
  const ferry::v1::JobState state = job.state();
  if (state != last_state_) {
    if (state == ferry::v1::JOB_STATE_LIVE && last_state_ != ferry::v1::JOB_STATE_CUTOVER) {
      std::fprintf(stderr, "%slive: the snapshot is done and the target follows the source; %s\n",
                   clear, hint_.c_str());
    } else if (state == ferry::v1::JOB_STATE_CUTOVER) {
      std::fprintf(stderr, "%scutover: waiting for the markers, then draining the dirty keys\n",
                   clear);
    }
    last_state_ = state;
  }
  const std::string& error = job.live().cutover_error();
  if (error != last_error_ && !error.empty()) {
    std::fprintf(stderr, "%scutover did not converge (the job is still live): %s\n", clear,
                 error.c_str());
  }
  last_error_ = error;
}

}  // namespace ferry::cli
