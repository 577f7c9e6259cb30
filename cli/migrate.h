#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "cli/job_options.h"
#include "cli/progress.h"

namespace ferry::cli {

struct MigrateOptions {
  JobRequest job;
  ProgressMode progress = ProgressMode::kNone;
  bool json = false;
  std::vector<std::string> warnings;  // From flag parsing; printed with the plan's.
  int agents = 2;                     // In-process agents; job.parallel slots shared among them.
  // SQLite state of the embedded controller. Empty: a temporary file, removed when the job
  // ends (kept, and named, when interrupted, so the copy can be resumed with --state).
  std::string state_path;
};

// Runs a whole migration in this process through the same code as a fleet: an embedded
// controller (in-process gRPC, no port) and `agents` agents. With a state file that holds an
// unfinished job, that job is resumed from its checkpoints instead of submitting a new one.
// Prints the report on stdout and returns the exit code. Setting `stop` (Ctrl-C) makes the
// agents hand their shards back at a batch boundary; the state keeps the checkpoints.
int RunMigrate(const MigrateOptions& options, std::atomic<bool>* stop);

}  // namespace ferry::cli
