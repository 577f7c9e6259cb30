#include "cli/migrate.h"

#include <cstdio>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "agent/copier.h"
#include "agent/rate_limiter.h"
#include "server/planner.h"

namespace ferry::cli {
namespace {

constexpr size_t kFailedKeysKept = 100;

// The state of a running local job, shared by the copying threads and the progress display.
class LocalJob {
 public:
  // `stop` is set by Ctrl-C, and by the job itself when a shard fails for good.
  LocalJob(const JobRequest& job, server::Plan plan, std::atomic<bool>* stop)
      : job_(job), plan_(std::move(plan)), stop_(*stop), limiter_(job.rate_limit),
        counters_(plan_.shards.size()) {}

  // Runs every shard on `job_.parallel` threads; returns the first error that stopped the job.
  absl::Status Run() {
    std::vector<std::thread> workers;
    const size_t threads = std::min<size_t>(job_.parallel, plan_.shards.size());
    for (size_t i = 0; i < threads; ++i) workers.emplace_back([this] { Work(); });
    for (std::thread& t : workers) t.join();
    absl::MutexLock lock(&mu_);
    if (error_.ok() && stop_.load()) return absl::CancelledError("interrupted");
    return error_;
  }

  ProgressSnapshot Snapshot() ABSL_LOCKS_EXCLUDED(mu_) {
    ProgressSnapshot s;
    absl::MutexLock lock(&mu_);
    for (const agent::ShardCounters& c : counters_) {
      s.scanned += c.scanned;
      s.copied += c.copied;
      s.skipped += c.skipped;
      s.vanished += c.vanished;
      s.expired += c.expired;
      s.failed += c.failed;
      s.bytes += c.bytes;
    }
    s.estimated_keys = plan_.estimated_keys;
    s.shards_total = static_cast<int>(plan_.shards.size());
    s.shards_done = shards_done_;
    s.elapsed = absl::Now() - start_;
    return s;
  }

  std::vector<std::pair<std::string, std::string>> FailedKeys() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return failed_keys_;
  }

 private:
  void Work() {
    for (;;) {
      const size_t i = next_.fetch_add(1);
      if (i >= plan_.shards.size() || stop_.load()) return;
      absl::Status status = CopyOne(i);
      absl::MutexLock lock(&mu_);
      if (status.ok()) {
        ++shards_done_;
      } else if (status.code() != absl::StatusCode::kCancelled && error_.ok()) {
        error_ = status;
        stop_ = true;  // A fatal error or a source that stayed away: the other shards stop too.
      }
    }
  }

  absl::Status CopyOne(size_t i) {
    const server::PlannedShard& planned = plan_.shards[i];
    agent::ShardSpec spec;
    spec.source = job_.source;
    spec.target = job_.target;
    spec.source_db = planned.source_db;
    spec.target_db = planned.target_db;
    spec.shard_bits = planned.shard_bits;
    spec.shard_index = planned.shard_index;
    spec.match = job_.match;
    spec.type = job_.type;
    agent::CopyOptions options;
    options.batch_keys = job_.batch_keys;
    options.on_conflict = job_.on_conflict;
    options.dry_run = job_.dry_run;
    agent::CopyCallbacks callbacks;
    callbacks.on_checkpoint = [this, i](const agent::Checkpoint& cp) {
      absl::MutexLock lock(&mu_);
      counters_[i] = cp.counters;
    };
    callbacks.on_failed_key = [this](const std::string& key, const std::string& reason) {
      absl::MutexLock lock(&mu_);
      if (failed_keys_.size() < kFailedKeysKept) failed_keys_.emplace_back(key, reason);
    };
    return agent::CopyShard(spec, options, agent::Checkpoint{}, &limiter_, &stop_, callbacks);
  }

  const JobRequest& job_;
  const server::Plan plan_;
  std::atomic<bool>& stop_;
  const absl::Time start_ = absl::Now();
  agent::RateLimiter limiter_;
  std::atomic<size_t> next_{0};

  absl::Mutex mu_;
  std::vector<agent::ShardCounters> counters_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<std::string, std::string>> failed_keys_ ABSL_GUARDED_BY(mu_);
  int shards_done_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
};

void PrintWarnings(const std::vector<std::string>& warnings) {
  for (const std::string& w : warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
}

}  // namespace

int RunMigrate(const MigrateOptions& options, std::atomic<bool>* stop) {
  const JobRequest& job = options.job;
  server::PlanRequest request;
  request.source = job.source;
  request.target = job.target;
  request.dbs = job.dbs;
  request.target_db = job.target_db;
  request.shards = job.shards;
  request.dry_run = job.dry_run;
  PrintWarnings(options.warnings);
  absl::StatusOr<server::Plan> plan = server::PlanCopy(request);
  if (!plan.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(plan.status().message()).c_str());
    return ExitCodeFor(plan.status());
  }
  PrintWarnings(plan->warnings);
  if (options.progress != ProgressMode::kNone) {
    std::fprintf(stderr, "copying %s -> %s: %zu databases, ~%llu keys, %zu shards\n",
                 job.source.Redacted().c_str(), job.target.Redacted().c_str(),
                 plan->keys_per_db.size(), static_cast<unsigned long long>(plan->estimated_keys),
                 plan->shards.size());
  }
  JobReport report;
  report.warnings = options.warnings;
  report.warnings.insert(report.warnings.end(), plan->warnings.begin(), plan->warnings.end());
  report.dry_run = job.dry_run;
  LocalJob local(job, *std::move(plan), stop);
  ProgressDisplay display(options.progress, [&local] { return local.Snapshot(); });
  display.Start();
  report.status = local.Run();
  display.Stop();
  report.totals = local.Snapshot();
  report.failed_keys = local.FailedKeys();
  int code = 0;
  if (report.status.code() == absl::StatusCode::kCancelled) {
    report.state = "cancelled";
    code = 130;
  } else if (!report.status.ok()) {
    report.state = "failed";
    code = std::max(1, ExitCodeFor(report.status));
  } else if (report.totals.failed > 0) {
    report.state = "done-with-errors";
    code = 1;
  } else {
    report.state = "done";
  }
  std::fputs(FormatReport(report, options.json).c_str(), stdout);
  std::fflush(stdout);
  return code;
}

}  // namespace ferry::cli
