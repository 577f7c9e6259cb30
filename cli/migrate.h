#pragma once

#include <atomic>

#include "cli/job_options.h"
#include "cli/progress.h"

namespace ferry::cli {

struct MigrateOptions {
  JobRequest job;
  ProgressMode progress = ProgressMode::kNone;
  bool json = false;
  std::vector<std::string> warnings;  // From flag parsing; printed with the plan's.
};

// Plans and runs a whole migration in this process, prints the report on stdout and returns the
// exit code. Setting `stop` (Ctrl-C) stops every shard at a batch boundary; the job also sets it
// when a shard fails for good.
int RunMigrate(const MigrateOptions& options, std::atomic<bool>* stop);

}  // namespace ferry::cli
