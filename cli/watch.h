#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "cli/client.h"
#include "cli/progress.h"

namespace ferry::cli {

struct WatchOptions {
  ProgressMode progress = ProgressMode::kNone;
  bool json = false;
  std::vector<std::string> warnings;  // Printed in the final report with the job's own.
  bool quiet_interrupt = false;       // Print nothing when `stop` ends the watch.
  // Called with every update, on the calling thread, after its warnings are shown (ferry
  // migrate --live: the notices of the live phase).
  std::function<void(const ferry::v1::Job&)> on_update;
  // Set: the report goes here instead of stdout (ferry cutover's one JSON object).
  std::string* report = nullptr;
};

// Shows a job's progress until it ends, prints the report (text or JSON) on stdout and returns
// the exit code of ExitCodeForJob. When `stop` is set first, returns 130 and leaves the job
// running.
int WatchJob(ControllerClient& client, const std::string& job_id, const WatchOptions& options,
             std::atomic<bool>* stop);

}  // namespace ferry::cli
