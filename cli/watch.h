#pragma once

#include <atomic>
#include <string>

#include "cli/client.h"
#include "cli/progress.h"

namespace ferry::cli {

struct WatchOptions {
  ProgressMode progress = ProgressMode::kNone;
  bool json = false;
  std::vector<std::string> warnings;  // Printed in the final report with the job's own.
  bool quiet_interrupt = false;       // Print nothing when `stop` ends the watch.
};

// Shows a job's progress until it ends, prints the report (text or JSON) on stdout and returns
// the exit code of ExitCodeForJob. When `stop` is set first, returns 130 and leaves the job
// running.
int WatchJob(ControllerClient& client, const std::string& job_id, const WatchOptions& options,
             std::atomic<bool>* stop);

}  // namespace ferry::cli
