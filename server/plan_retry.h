#pragma once

// Planning again after a transient error (Controller::PlanJob): which errors are worth another
// attempt, how long to wait between attempts, and when to give up. A source SIGSTOPped for a few
// seconds, a node restarting or a cluster failing over must not fail a job that would finish.

#include <optional>
#include <string>

#include "absl/random/bit_gen_ref.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/base/backoff.h"

namespace ferry::server {

// Whether planning that failed with `error` may succeed when run again soon, with nobody's help:
// UNAVAILABLE and DEADLINE_EXCEEDED (a server unreachable, stopped or restarting, and the busy
// replies LOADING, BUSY, TRYAGAIN, CLUSTERDOWN, MASTERDOWN, READONLY, NOREPLICAS: see
// common/redis/errors.h) and ABORTED (MOVED or ASK outlived the router's resends: the topology is
// changing under the planner, whose next attempt reads the new one). Every other error needs
// someone to change something first and fails the job at once: a refused login or permission,
// an invalid argument, a failed precondition (a non-empty target, memory that does not fit), not
// found, and RESOURCE_EXHAUSTED (OOM: a target over maxmemory stays so until someone frees it).
bool IsTransientPlanningError(const absl::Status& error);

struct PlanRetryPolicy {
  // How long after the first attempt began a transient error is still retried; zero fails the
  // job at the first error, as permanent errors always do.
  absl::Duration budget = absl::Seconds(60);
  // The first wait; each one then doubles up to max_backoff (with jitter: common/base/backoff.h).
  absl::Duration initial_backoff = absl::Seconds(1);
  absl::Duration max_backoff = absl::Seconds(15);
};

// The planning attempts of one job in this controller process (a restart begins again). Not
// thread-safe: the controller's, under its lock.
class PlanRetry {
 public:
  PlanRetry(const PlanRetryPolicy& policy, absl::Time first_start);

  // Records an attempt that failed with `error` at `now`. Returns the wait before the next one,
  // or nullopt when the job must fail now: a permanent error, or the budget is spent (the last
  // wait ends at the budget, so the last attempt begins there).
  std::optional<absl::Duration> OnFailure(const absl::Status& error, absl::Time now,
                                          absl::BitGenRef random);
  // Why the job waits after OnFailure at `now` gave `wait`, for Job.planning_retry and the log:
  // the attempt, its error (passwords not scrubbed yet) and when the next attempt begins.
  std::string WaitingText(const absl::Status& error, absl::Duration wait, absl::Time now) const;
  // What the job's error says after "planning failed" once OnFailure gave up at `now`: "after N
  // attempts over Xs" when the budget ran out, empty for a permanent error or without a budget.
  std::string GiveUpContext(absl::Time now) const;

  int attempts() const { return attempts_; }
  // When the next attempt is due; nullopt while an attempt runs or is queued.
  std::optional<absl::Time> due() const { return due_; }
  void set_due(std::optional<absl::Time> due) { due_ = due; }

 private:
  const PlanRetryPolicy policy_;
  const absl::Time first_start_;
  Backoff backoff_;
  int attempts_ = 0;
  bool last_transient_ = false;
  std::optional<absl::Time> due_;
};

}  // namespace ferry::server
