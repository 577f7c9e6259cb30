#include "cli/migrate.h"

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <thread>

#include "absl/strings/str_cat.h"
#include "agent/session.h"
#include "cli/client.h"
#include "cli/watch.h"
#include "common/base/logging.h"
#include "server/controller.h"
#include "server/copy_planner.h"

namespace ferry::cli {
namespace {

// A temporary state file, removed (with SQLite's -wal and -shm) unless Keep() was called.
class StateFile {
 public:
  explicit StateFile(const std::string& path) : path_(path), temporary_(path.empty()) {
    if (!temporary_) return;
    const char* dir = std::getenv("TMPDIR");
    std::string pattern = absl::StrCat(dir ? dir : "/tmp", "/ferry-migrate-XXXXXX.db");
    int fd = mkstemps(pattern.data(), 3);
    if (fd >= 0) close(fd);
    path_ = pattern;
  }
  ~StateFile() {
    if (!temporary_ || keep_) return;
    for (const char* suffix : {"", "-wal", "-shm"}) unlink((path_ + suffix).c_str());
  }
  const std::string& path() const { return path_; }
  bool temporary() const { return temporary_; }
  void Keep() { keep_ = true; }

 private:
  std::string path_;
  bool temporary_;
  bool keep_ = false;
};

// The in-process agents, each on its own thread.
class LocalAgents {
 public:
  LocalAgents(int count, int parallel, std::shared_ptr<grpc::Channel> channel) {
    const int slots = std::max(1, (parallel + count - 1) / count);
    for (int i = 0; i < count; ++i) {
      agent::AgentOptions options;
      options.controller_address = "in-process";
      options.name = absl::StrCat("local-", i);
      options.slots = slots;
      std::unique_ptr<agent::Agent> a = agent::Agent::Create(options, channel);
      if (a == nullptr) continue;
      agent::Agent* raw = a.get();
      agents_.push_back(std::move(a));
      threads_.emplace_back([raw] { raw->Run(); });
    }
  }
  ~LocalAgents() { Stop(); }
  // Drains: running shards stop at a batch boundary and go back with their checkpoints.
  void Stop() {
    for (auto& a : agents_) a->Shutdown();
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }

 private:
  std::vector<std::unique_ptr<agent::Agent>> agents_;
  std::vector<std::thread> threads_;
};

// The unfinished job of a reused state file, if there is one.
absl::StatusOr<std::string> UnfinishedJob(ControllerClient& client) {
  absl::StatusOr<std::vector<ferry::v1::Job>> jobs = client.List();
  if (!jobs.ok()) return jobs.status();
  for (const ferry::v1::Job& job : *jobs) {
    if (!IsFinal(job.state())) return job.id();
  }
  return std::string();
}

int PrintInterrupted(ControllerClient& client, const std::string& job_id, const StateFile& state,
                     bool json) {
  JobReport report;
  report.state = "interrupted";
  absl::StatusOr<ferry::v1::Job> job = client.Get(job_id);
  if (job.ok()) {
    report.totals = SnapshotOfJob(*job, absl::Now());
    report.dry_run = job->spec().dry_run();
  }
  report.status = absl::CancelledError(
      absl::StrCat("interrupted; the checkpoints are in ", state.path(),
                   ": run the same command with --state ", state.path(), " to resume"));
  std::fputs(FormatReport(report, json).c_str(), stdout);
  std::fflush(stdout);
  return 130;
}

}  // namespace

int RunMigrate(const MigrateOptions& options, std::atomic<bool>* stop) {
  for (const std::string& w : options.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  StateFile state(options.state_path);
  server::CopyPlanner planner;
  server::ControllerOptions controller_options;
  controller_options.listen = "";  // In-process only: nothing listens on the network.
  controller_options.state_path = state.path();
  absl::StatusOr<std::unique_ptr<server::Controller>> controller =
      server::Controller::Start(controller_options, &planner);
  if (!controller.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(controller.status().message()).c_str());
    return 2;
  }
  ControllerClient client((*controller)->InProcessChannel(), absl::Seconds(30),
                          "the embedded controller");
  absl::StatusOr<std::string> job_id = UnfinishedJob(client);
  if (job_id.ok() && !job_id->empty()) {
    std::fprintf(stderr, "resuming job %s from %s\n", job_id->c_str(), state.path().c_str());
  } else if (job_id.ok()) {
    job_id = client.Submit(JobSpecFromRequest(options.job));
  }
  if (!job_id.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(job_id.status().message()).c_str());
    return ExitCodeFor(job_id.status());
  }
  LocalAgents agents(options.agents, options.job.parallel, (*controller)->InProcessChannel());
  WatchOptions watch;
  watch.progress = options.progress;
  watch.json = options.json;
  watch.quiet_interrupt = true;
  const int code = WatchJob(client, *job_id, watch, stop);
  agents.Stop();
  if (stop->load()) {
    state.Keep();
    return PrintInterrupted(client, *job_id, state, options.json);
  }
  return code;
}

}  // namespace ferry::cli
