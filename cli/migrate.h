#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "cli/job_options.h"
#include "cli/progress.h"
#include "ferry/v1/ferry.pb.h"

namespace ferry::cli {

struct MigrateOptions {
  JobRequest job;
  ProgressMode progress = ProgressMode::kNone;
  bool json = false;
  std::vector<std::string> warnings;  // From flag parsing; printed with the plan's.
  int agents = 2;  // In-process agents; together they run job.parallel shards per source node.
  // SQLite state of the embedded controller. Empty: a temporary file, removed when the job
  // ends (kept, and named, when interrupted, so the copy can be resumed with --state).
  std::string state_path;
  // --verify: once the copy has run, a verify job compares the target with the source.
  bool verify_after = false;
  // --listen: the embedded controller also serves the Controller API on the network, so that
  // ferry status, watch and cutover work from another shell.
  ServeRequest serve;
  // --live: the verification once the cutover converged (the controller's is followed; this
  // one runs when the cutover asked for none, or for quick where this is full).
  CutoverVerify cutover_verify = CutoverVerify::kQuick;
  // --plan-retry-seconds: the embedded controller's planning retry budget. Shorter than a
  // fleet controller's minute: someone waits at the terminal, and a mistyped address should
  // fail soon, while a restart or a stopped server of a few seconds is still ridden out.
  absl::Duration plan_retry = absl::Seconds(10);
};

// Runs a whole migration in this process through the same code as a fleet: an embedded
// controller (in-process gRPC, no port) and `agents` agents. With a state file that holds an
// unfinished job, that job is resumed from its checkpoints instead of submitting a new one;
// when it is not the job the options describe (JobDifferences), nothing runs and the exit
// code is 2. With `job.live`, the job follows the source after its snapshot until a cutover
// (ferry cutover, through --listen) converges, then the verification runs; the exit code is 0
// only when it converged and verified equal.
// Prints the report on stdout and returns the exit code. Setting `stop` (Ctrl-C) makes the
// agents hand their shards back at a batch boundary; the state keeps the checkpoints.
int RunMigrate(const MigrateOptions& options, std::atomic<bool>* stop);

// What a resume of `stored` (the unfinished job of a state file, as the controller answers it)
// would copy differently from what `requested` (JobSpecFromRequest of this command line) asks:
// one phrase per difference, to follow "this command" ("copies to redis://c:3", "has --match
// \"b*\" where the job has no --match"); empty when resuming does what the command asks. Both
// specs are normalized first. Passwords, users and TLS settings say how to log in, not what is
// copied, and are neither compared nor shown; nor are the tuning options (--parallel, --batch,
// --rate-limit), see TuningKeptOnResume.
std::vector<std::string> JobDifferences(const ferry::v1::JobSpec& stored,
                                        const ferry::v1::JobSpec& requested);

// The tuning options of `requested` that differ from `stored` ("--parallel 8"), shown as the
// stored job's values, which a resume keeps (they are part of the stored job's spec).
std::vector<std::string> TuningKeptOnResume(const ferry::v1::JobSpec& stored,
                                            const ferry::v1::JobSpec& requested);

}  // namespace ferry::cli
