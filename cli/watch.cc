#include "cli/watch.h"

#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "proto/wire/counters.h"

namespace ferry::cli {
namespace {

// A verify job's counters summed per source database (a reverse shard checks `target_db` of
// the source), when it checked more than one; empty otherwise or when the shards cannot be read.
std::vector<std::pair<int, ferry::v1::Counters>> CountersPerDb(ControllerClient& client,
                                                               const std::string& job_id) {
  absl::StatusOr<ferry::v1::Job> job = client.Get(job_id, /*include_shards=*/true);
  if (!job.ok()) return {};
  std::map<int, ferry::v1::Counters> per_db;
  for (const ferry::v1::ShardStatus& shard : job->shards()) {
    const int db = shard.shard().reverse() ? shard.shard().target_db() : shard.shard().source_db();
    wire::AddCounters(per_db[db], shard.counters());
  }
  if (per_db.size() < 2) return {};
  return {per_db.begin(), per_db.end()};
}

}  // namespace

int WatchJob(ControllerClient& client, const std::string& job_id, const WatchOptions& options,
             std::atomic<bool>* stop) {
  const absl::Time start = absl::Now();
  absl::Mutex mu;
  ferry::v1::Job latest;
  ProgressDisplay display(options.progress, [&] {
    absl::MutexLock lock(&mu);
    return SnapshotOfJob(latest, start);
  });
  display.Start();
  // Warnings (the plan's: a non-empty target, too little memory...) are shown on stderr as soon
  // as they appear, in every output mode, and again in the report; so is what planning waits
  // for after a transient error, each time it changes, or a job that retries looks hung.
  int warnings_shown = 0;
  std::string retry_shown;
  const char* clear_line = options.progress == ProgressMode::kBar ? "\r\033[K" : "";
  absl::StatusOr<ferry::v1::Job> final_job = client.Watch(
      job_id,
      [&](const ferry::v1::Job& job) {
        for (; warnings_shown < job.warnings_size(); ++warnings_shown) {
          std::fprintf(stderr, "%swarning: %s\n", clear_line, job.warnings(warnings_shown).c_str());
        }
        if (job.planning_retry() != retry_shown) {
          retry_shown = job.planning_retry();
          if (!retry_shown.empty()) {
            std::fprintf(stderr, "%swaiting: %s\n", clear_line, retry_shown.c_str());
          }
        }
        if (options.on_update) options.on_update(job);
        absl::MutexLock lock(&mu);
        latest = job;
      },
      stop);
  display.Stop();
  if (!final_job.ok() && final_job.status().code() == absl::StatusCode::kCancelled) {
    if (!options.quiet_interrupt) {
      std::fprintf(stderr, "stopped watching; job %s goes on (ferry status %s)\n", job_id.c_str(),
                   job_id.c_str());
    }
    return 130;
  }
  if (!final_job.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(final_job.status().message()).c_str());
    const int code = ExitCodeFor(final_job.status());
    return code == 0 ? 1 : code;
  }
  JobReport report;
  report.state = StateName(*final_job);
  report.dry_run = final_job->spec().dry_run();
  report.totals = SnapshotOfJob(*final_job, start);
  report.warnings = options.warnings;
  report.warnings.insert(report.warnings.end(), final_job->warnings().begin(),
                         final_job->warnings().end());
  if (!final_job->error().empty()) {
    report.status = absl::Status(
        static_cast<absl::StatusCode>(final_job->error_code() == 0 ? 2 : final_job->error_code()),
        final_job->error());
  }
  const ferry::v1::Counters& counters = final_job->progress().counters();
  if (counters.failed() + Differences(counters) > 0) {
    absl::StatusOr<ferry::v1::ListFailedKeysResponse> failed = client.FailedKeys(job_id, 100);
    if (failed.ok()) {
      for (const auto& key : failed->keys())
        report.failed_keys.emplace_back(key.key(), key.reason());
    }
  }
  if (report.totals.verify && Differences(counters) > 0)
    report.per_db = CountersPerDb(client, job_id);
  if (options.report != nullptr) {
    *options.report = FormatReport(report, options.json);
  } else {
    std::fputs(FormatReport(report, options.json).c_str(), stdout);
    std::fflush(stdout);
  }
  return ExitCodeForJob(*final_job);
}

}  // namespace ferry::cli
