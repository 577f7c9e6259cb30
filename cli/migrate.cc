#include "cli/migrate.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/session.h"
#include "cli/client.h"
#include "cli/cutover.h"
#include "cli/watch.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "proto/wire/job_defaults.h"
#include "proto/wire/job_state.h"
#include "server/controller.h"
#include "server/copy_planner.h"
#include "server/job_spec.h"

namespace ferry::cli {
namespace {

// A temporary state file, removed with every file that goes with it unless Keep() was called.
// Destroy it after the controller, which holds the lock and the SQLite connection.
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
    // SQLite's WAL, shared memory and (when it falls back from WAL) rollback journal, and the
    // JobStore's lock file (LockStateFile).
    for (const char* suffix : {"", "-wal", "-shm", "-journal", ".lock"}) {
      unlink((path_ + suffix).c_str());
    }
  }
  const std::string& path() const { return path_; }
  bool temporary() const { return temporary_; }
  void Keep() { keep_ = true; }

 private:
  std::string path_;
  bool temporary_;
  bool keep_ = false;
};

// --parallel is per source node and the scheduler enforces it (server/scheduler.cc), so the
// local agents must never be the tighter limit: together they have room for `parallel` shards on
// each of as many primaries as a Redis Cluster can have. The real node count is known only once
// the job is planned, after the agents start; a slot costs nothing until a shard runs in it.
constexpr int kMaxSourceNodes = 1000;

// The in-process agents, each on its own thread.
class LocalAgents {
 public:
  LocalAgents(int count, int parallel_per_node, std::shared_ptr<grpc::Channel> channel) {
    const int64_t total = int64_t{parallel_per_node} * kMaxSourceNodes;
    const int slots = static_cast<int>(std::max<int64_t>(1, (total + count - 1) / count));
    for (int i = 0; i < count; ++i) {
      agent::AgentOptions options;
      options.controller_address = "in-process";
      options.name = absl::StrCat("local-", i);
      options.slots = slots;
      std::unique_ptr<agent::Agent> a = agent::Agent::Create(options, channel);
      if (a == nullptr) continue;
      agent::Agent* raw = a.get();
      agents_.push_back(std::move(a));
      // No token on the in-process channel: Run() ends only on Shutdown(), always OK.
      threads_.emplace_back([raw] { (void)raw->Run(); });
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
absl::StatusOr<std::optional<ferry::v1::Job>> UnfinishedJob(ControllerClient& client) {
  absl::StatusOr<std::vector<ferry::v1::Job>> jobs = client.List();
  if (!jobs.ok()) return jobs.status();
  for (const ferry::v1::Job& job : *jobs) {
    if (!wire::IsEnded(job.state())) return job;
  }
  return std::nullopt;
}

// `spec` normalized as the controller stores it (a password in a URI moved out of it). A spec
// the controller would refuse is compared as it is.
ferry::v1::JobSpec Normalized(const ferry::v1::JobSpec& spec) {
  ferry::v1::JobSpec out = spec;
  if (!server::NormalizeJobSpec(&out).ok()) return spec;
  return out;
}

// The endpoint of `spec` without its password; nullopt when the URI does not parse.
std::optional<redis::Endpoint> EndpointOf(const ferry::v1::EndpointSpec& spec) {
  absl::StatusOr<redis::Endpoint> endpoint = redis::ParseEndpointUri(spec.uri());
  if (!endpoint.ok()) return std::nullopt;
  endpoint->password.clear();
  endpoint->host = absl::AsciiStrToLower(endpoint->host);
  return *std::move(endpoint);
}

std::string Shown(const ferry::v1::EndpointSpec& spec) {
  std::optional<redis::Endpoint> endpoint = EndpointOf(spec);
  return endpoint.has_value() ? endpoint->Redacted() : "an unreadable URI";
}

// Which server: a different user or TLS setting on the same host and port reaches the same data.
bool SameServer(const ferry::v1::EndpointSpec& a, const ferry::v1::EndpointSpec& b) {
  std::optional<redis::Endpoint> x = EndpointOf(a), y = EndpointOf(b);
  if (!x.has_value() || !y.has_value()) return a.uri() == b.uri();
  return x->Address() == y->Address();
}

// The source databases copied: --db, else the source URI's db; empty means every non-empty one.
std::vector<int> SourceDbs(const ferry::v1::JobSpec& spec) {
  std::vector<int> dbs(spec.dbs().begin(), spec.dbs().end());
  if (dbs.empty()) {
    std::optional<redis::Endpoint> source = EndpointOf(spec.source());
    if (source.has_value() && source->db.has_value()) dbs.push_back(*source->db);
  }
  std::sort(dbs.begin(), dbs.end());
  dbs.erase(std::unique(dbs.begin(), dbs.end()), dbs.end());
  return dbs;
}

std::string DescribeDbs(const std::vector<int>& dbs) {
  if (dbs.empty()) return "every non-empty database";
  return absl::StrCat(dbs.size() == 1 ? "database " : "databases ", absl::StrJoin(dbs, ","));
}

// The target database everything goes to: target_db, else the target URI's db; nullopt keeps
// each key's db number.
std::optional<int> TargetDb(const ferry::v1::JobSpec& spec) {
  if (spec.has_target_db()) return spec.target_db();
  std::optional<redis::Endpoint> target = EndpointOf(spec.target());
  return target.has_value() ? target->db : std::nullopt;
}

// An option as typed: nullopt when not given, "" for a flag without a value.
using FlagValue = std::optional<std::string>;

std::string FlagForm(absl::string_view flag, const FlagValue& value) {
  if (!value.has_value()) return absl::StrCat("no ", flag);
  return value->empty() ? std::string(flag) : absl::StrCat(flag, " ", *value);
}

std::string OnConflictName(ferry::v1::OnConflict policy) {
  switch (policy) {
    case ferry::v1::ON_CONFLICT_SKIP:
      return "skip";
    case ferry::v1::ON_CONFLICT_FAIL:
      return "fail";
    default:
      return "replace";
  }
}

// Options shown in flag form: the flag, its value in the stored job and on this command line.
struct FlagValues {
  absl::string_view flag;
  FlagValue stored;
  FlagValue requested;
};

void AddFlagDifferences(const std::vector<FlagValues>& flags, std::vector<std::string>* out) {
  for (const FlagValues& f : flags) {
    if (f.stored == f.requested) continue;
    out->push_back(absl::StrCat("has ", FlagForm(f.flag, f.requested), " where the job has ",
                                FlagForm(f.flag, f.stored)));
  }
}

// A string option; empty means not given.
FlagValue StringFlag(const std::string& value, bool quote = false) {
  if (value.empty()) return std::nullopt;
  return quote ? absl::StrCat("\"", value, "\"") : value;
}

FlagValue BoolFlag(bool set) { return set ? FlagValue("") : std::nullopt; }

// Refuses to resume `job` for a command line that asks for another copy: FAILED_PRECONDITION
// (exit code 2) with every difference, else OK. Prints what a resume keeps of the stored job's
// tuning.
absl::Status CheckResumable(const ferry::v1::Job& job, const ferry::v1::JobSpec& requested,
                            const std::string& state_path) {
  const std::vector<std::string> differences = JobDifferences(job.spec(), requested);
  if (!differences.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--state ", state_path, " holds an unfinished job from ", Shown(job.spec().source()),
        " to ", Shown(job.spec().target()), "; this command ", absl::StrJoin(differences, " and "),
        ": use another --state file, or the same options to resume"));
  }
  const std::vector<std::string> kept = TuningKeptOnResume(job.spec(), requested);
  if (!kept.empty()) {
    std::fprintf(stderr, "note: the resumed job keeps the options it was started with: %s\n",
                 absl::StrJoin(kept, " ").c_str());
  }
  return absl::OkStatus();
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

// The unfinished job of the state file when it is the one `requested` describes, else a new
// job; FAILED_PRECONDITION when the state file holds an unfinished job of another copy.
absl::StatusOr<std::string> JobToRun(ControllerClient& client, const ferry::v1::JobSpec& requested,
                                     const std::string& state_flag, const std::string& path) {
  absl::StatusOr<std::optional<ferry::v1::Job>> unfinished = UnfinishedJob(client);
  if (!unfinished.ok()) return unfinished.status();
  if (!unfinished->has_value()) return client.Submit(requested);
  const ferry::v1::Job& job = **unfinished;
  FERRY_RETURN_IF_ERROR(CheckResumable(job, requested, state_flag));
  std::fprintf(stderr, "resuming job %s from %s\n", job.id().c_str(), path.c_str());
  return job.id();
}

}  // namespace

std::vector<std::string> JobDifferences(const ferry::v1::JobSpec& stored_spec,
                                        const ferry::v1::JobSpec& requested_spec) {
  const ferry::v1::JobSpec stored = Normalized(stored_spec);
  const ferry::v1::JobSpec requested = Normalized(requested_spec);
  std::vector<std::string> out;
  if (stored.kind() != requested.kind()) {
    out.push_back(requested.kind() == ferry::v1::JOB_KIND_VERIFY ? "verifies where the job copies"
                                                                 : "copies where the job verifies");
  }
  if (!SameServer(stored.source(), requested.source())) {
    out.push_back(absl::StrCat("copies from ", Shown(requested.source())));
  }
  if (!SameServer(stored.target(), requested.target()) || TargetDb(stored) != TargetDb(requested)) {
    out.push_back(absl::StrCat("copies to ", Shown(requested.target())));
  }
  if (SourceDbs(stored) != SourceDbs(requested)) {
    out.push_back(absl::StrCat("copies ", DescribeDbs(SourceDbs(requested)),
                               " where the job copies ", DescribeDbs(SourceDbs(stored))));
  }
  const auto read_from = [](const ferry::v1::JobSpec& spec) -> FlagValue {
    return spec.read_from() == ferry::v1::READ_FROM_REPLICA ? "replica" : "primary";
  };
  const auto shards = [](const ferry::v1::JobSpec& spec) -> FlagValue {
    if (spec.shards() <= 0) return std::nullopt;
    return absl::StrCat(spec.shards());
  };
  AddFlagDifferences(
      {
          {"--match", StringFlag(stored.match(), true), StringFlag(requested.match(), true)},
          {"--type", StringFlag(stored.type()), StringFlag(requested.type())},
          {"--merge-dbs", BoolFlag(stored.merge_dbs()), BoolFlag(requested.merge_dbs())},
          {"--on-conflict", OnConflictName(stored.on_conflict()),
           OnConflictName(requested.on_conflict())},
          {"--dry-run", BoolFlag(stored.dry_run()), BoolFlag(requested.dry_run())},
          {"--read-from", read_from(stored), read_from(requested)},
          {"--drop-field-ttls", BoolFlag(stored.drop_field_ttls()),
           BoolFlag(requested.drop_field_ttls())},
          {"--shards", shards(stored), shards(requested)},
          {"--live", BoolFlag(stored.live()), BoolFlag(requested.live())},
      },
      &out);
  return out;
}

std::vector<std::string> TuningKeptOnResume(const ferry::v1::JobSpec& stored,
                                            const ferry::v1::JobSpec& requested) {
  // How fast, not what: a resume with another --parallel, --batch or --rate-limit copies the
  // same keys, so it is allowed. The stored job's values stay in force (the controller plans
  // and leases from its stored spec), which the caller says.
  std::vector<std::string> out;
  // A --parallel not given (0) leaves the choice to the controller: nothing to say.
  if (requested.parallel() != 0 && stored.parallel() != requested.parallel()) {
    out.push_back(absl::StrCat("--parallel ", stored.parallel()));
  }
  if (stored.batch_keys() != requested.batch_keys()) {
    out.push_back(absl::StrCat("--batch ", stored.batch_keys()));
  }
  if (stored.rate_limit() != requested.rate_limit()) {
    out.push_back(stored.rate_limit() > 0 ? absl::StrCat("--rate-limit ", stored.rate_limit())
                                          : "no --rate-limit");
  }
  if (stored.rate_limit_bytes() != requested.rate_limit_bytes()) {
    out.push_back(stored.rate_limit_bytes() > 0
                      ? absl::StrCat("--rate-limit-bytes ", stored.rate_limit_bytes() / 1e6)
                      : "no --rate-limit-bytes");
  }
  if (stored.copy_path() != requested.copy_path()) {
    out.push_back(stored.copy_path() == ferry::v1::COPY_PATH_TYPED ? "--copy-path typed"
                                                                   : "--copy-path auto");
  }
  if (stored.big_key_bytes() != requested.big_key_bytes()) {
    out.push_back(absl::StrCat("--big-key-bytes ", stored.big_key_bytes()));
  }
  if (stored.live() && requested.live() &&
      stored.live_dirty_bytes() != requested.live_dirty_bytes()) {
    out.push_back(absl::StrCat("--live-dirty-bytes ", stored.live_dirty_bytes()));
  }
  return out;
}

namespace {

// The job to run first: the unfinished one of the state file, the copy, or with
// `verify_after` the verification when the state file's copy is done and its verification
// unfinished (a `ferry migrate --verify` interrupted while verifying).
absl::StatusOr<std::string> FirstJob(ControllerClient& client, const MigrateOptions& options,
                                     const std::string& path, bool* verifying) {
  const ferry::v1::JobSpec copy = JobSpecFromRequest(options.job);
  *verifying = options.job.verify;
  if (!options.verify_after) return JobToRun(client, copy, options.state_path, path);
  absl::StatusOr<std::optional<ferry::v1::Job>> unfinished = UnfinishedJob(client);
  if (!unfinished.ok()) return unfinished.status();
  if (!unfinished->has_value() || (*unfinished)->spec().kind() != ferry::v1::JOB_KIND_VERIFY) {
    return JobToRun(client, copy, options.state_path, path);
  }
  *verifying = true;
  JobRequest verify = options.job;
  verify.verify = true;
  return JobToRun(client, JobSpecFromRequest(verify), options.state_path, path);
}

// --listen: where the embedded controller serves, and the flags that reach it; empty without.
std::string AnnounceServing(const server::Controller& controller, const MigrateOptions& options,
                            const std::string& job_id) {
  if (options.serve.listen.empty()) return "";
  const std::string address = ServedAddress(options.serve.listen, controller.port());
  const std::string flags = ClientFlagsFor(address, options.serve);
  std::fprintf(stderr,
               "job %s: the controller API is served on %s (ferry status|watch|cutover %s %s)\n",
               job_id.c_str(), address.c_str(), flags.c_str(), job_id.c_str());
  return flags;
}

// The copy ended done or done with failed keys: there is a target to verify.
bool CopyRanToItsEnd(ControllerClient& client, const std::string& job_id) {
  absl::StatusOr<ferry::v1::Job> job = client.Get(job_id);
  return job.ok() && (job->state() == ferry::v1::JOB_STATE_DONE ||
                      job->state() == ferry::v1::JOB_STATE_DONE_WITH_ERRORS);
}

}  // namespace

int RunMigrate(const MigrateOptions& options, std::atomic<bool>* stop) {
  for (const std::string& w : options.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  StateFile state(options.state_path);
  server::CopyPlanner planner;
  server::ControllerOptions controller_options;
  // In-process only unless --listen, with ferry-controller's rules for the address.
  controller_options.listen = options.serve.listen;
  controller_options.tls_cert = options.serve.tls_cert;
  controller_options.tls_key = options.serve.tls_key;
  controller_options.token = options.serve.token;
  controller_options.insecure = options.serve.insecure;
  controller_options.state_path = state.path();
  controller_options.plan_retry_budget = options.plan_retry;
  absl::StatusOr<std::unique_ptr<server::Controller>> controller =
      server::Controller::Start(controller_options, &planner);
  if (!controller.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(controller.status().message()).c_str());
    return 2;
  }
  ControllerClient client((*controller)->InProcessChannel(), absl::Seconds(30),
                          "the embedded controller");
  bool verifying = false;
  absl::StatusOr<std::string> job_id = FirstJob(client, options, state.path(), &verifying);
  if (!job_id.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(job_id.status().message()).c_str());
    return ExitCodeFor(job_id.status());
  }
  const std::string client_flags = AnnounceServing(**controller, options, *job_id);
  LocalAgents agents(
      options.agents,
      options.job.parallel > 0 ? options.job.parallel : wire::kMaxAutoParallelPerNode,
      (*controller)->InProcessChannel());
  WatchOptions watch;
  watch.progress = options.progress;
  watch.json = options.json;
  watch.quiet_interrupt = true;
  if (options.job.live && !verifying) {
    watch.on_update = LiveNotices(CutoverHint(*job_id, client_flags, state.path()),
                                  options.progress == ProgressMode::kBar);
  }
  int code = WatchJob(client, *job_id, watch, stop);
  watch.on_update = nullptr;
  // --live: a cutover that converged is verified (the controller's verification, else ours).
  if (options.job.live && !verifying && !stop->load()) {
    absl::StatusOr<ferry::v1::Job> job = client.Get(*job_id);
    if (job.ok() && job->state() == ferry::v1::JOB_STATE_CUTOVER_READY) {
      code = FollowCutoverVerification(client, *job, options.cutover_verify, &options.job,
                                       absl::Seconds(5), watch, stop);
    }
  }
  // --verify: a copy that ran to its end (with or without failed keys) is verified next, by
  // the same agents; the exit code is the copy's when it failed keys, else the verification's.
  if (!verifying && options.verify_after && !stop->load() && CopyRanToItsEnd(client, *job_id)) {
    JobRequest verify = options.job;
    verify.verify = true;
    absl::StatusOr<std::string> verify_id = client.Submit(JobSpecFromRequest(verify));
    if (!verify_id.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(verify_id.status().message()).c_str());
      agents.Stop();
      return ExitCodeFor(verify_id.status());
    }
    job_id = verify_id;
    const int verify_code = WatchJob(client, *job_id, watch, stop);
    code = code == 0 ? verify_code : code;
  }
  agents.Stop();
  if (stop->load()) {
    state.Keep();
    return PrintInterrupted(client, *job_id, state, options.json);
  }
  return code;
}

}  // namespace ferry::cli
