// ferry-fleet-sim: one real ferry-controller (started here, on a fresh state file) under N
// simulated agents (bench/fleet_agents.h) working through jobs planned over a real source. Prints
// lease grants/s, checkpoint acks/s, ack and grant latency, the controller's CPU and RSS, the
// state file's size and write rate, then kills the controller (SIGKILL) under that load, restarts
// it on the same file and times until every slot holds a lease again. Results are `key=value`
// lines after "RESULT" (bench/fleet_sim.sh makes a table of them).

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "bench/fleet_agents.h"
#include "ferry/v1/ferry.grpc.pb.h"

namespace {

namespace pb = ::ferry::v1;

constexpr char kUsage[] =
    "usage: ferry-fleet-sim --controller-bin PATH --state FILE --port PORT --source URI\n"
    "         --target URI --jobs DB:SHARDS[,DB:SHARDS...] [--agents N] [--slots N]\n"
    "         [--lease-seconds S] [--duration S] [--parallel N] [--no-recovery]\n"
    "         [--controller-log FILE]\n";

struct Flags {
  std::string controller_bin, state, source, target, controller_log = "/dev/null";
  int port = 0;
  std::vector<std::pair<int, int>> jobs;  // (db, shards)
  int agents = 100, slots = 8, parallel = 100000;
  double lease_seconds = 5, duration = 30;
  bool recovery = true;
};

bool ParseFlags(int argc, char** argv, Flags* f) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    auto number = [&](auto* out) { return absl::SimpleAtoi(next(), out); };
    auto real = [&](double* out) { return absl::SimpleAtod(next(), out); };
    bool ok = true;
    if (arg == "--controller-bin")
      f->controller_bin = next();
    else if (arg == "--state")
      f->state = next();
    else if (arg == "--source")
      f->source = next();
    else if (arg == "--target")
      f->target = next();
    else if (arg == "--controller-log")
      f->controller_log = next();
    else if (arg == "--port")
      ok = number(&f->port);
    else if (arg == "--agents")
      ok = number(&f->agents);
    else if (arg == "--slots")
      ok = number(&f->slots);
    else if (arg == "--parallel")
      ok = number(&f->parallel);
    else if (arg == "--lease-seconds")
      ok = real(&f->lease_seconds);
    else if (arg == "--duration")
      ok = real(&f->duration);
    else if (arg == "--no-recovery")
      f->recovery = false;
    else if (arg == "--jobs") {
      for (absl::string_view job : absl::StrSplit(next(), ',')) {
        std::pair<std::string, std::string> parts = absl::StrSplit(job, ':');
        int db = 0, shards = 0;
        ok = ok && absl::SimpleAtoi(parts.first, &db) && absl::SimpleAtoi(parts.second, &shards);
        f->jobs.emplace_back(db, shards);
      }
    } else
      ok = false;
    if (!ok) {
      std::fprintf(stderr, "ferry-fleet-sim: bad argument %s\n%s", arg.c_str(), kUsage);
      return false;
    }
  }
  if (f->controller_bin.empty() || f->state.empty() || f->port == 0 || f->source.empty() ||
      f->target.empty() || f->jobs.empty()) {
    std::fputs(kUsage, stderr);
    return false;
  }
  return true;
}

// The controller process: started, killed and restarted by pid.
class ControllerProcess {
 public:
  explicit ControllerProcess(const Flags& flags) : flags_(flags) {}
  ~ControllerProcess() { Stop(SIGTERM); }

  bool Start() {
    const std::string listen = absl::StrCat("127.0.0.1:", flags_.port);
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // Never outlives the simulation.
      const int log = open(flags_.controller_log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      if (log >= 0) dup2(log, STDERR_FILENO);
      execl(flags_.controller_bin.c_str(), flags_.controller_bin.c_str(), "--listen",
            listen.c_str(), "--state", flags_.state.c_str(), "--log-level", "warning", nullptr);
      _exit(127);
    }
    return pid_ > 0;
  }
  // Sends `signal` and reaps the process.
  void Stop(int signal) {
    if (pid_ <= 0) return;
    kill(pid_, signal);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  pid_t pid() const { return pid_; }
  // The process ended (and is reaped).
  bool Exited() {
    if (pid_ <= 0) return true;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) != pid_) return false;
    std::fprintf(stderr, "ferry-controller exited (status %d): see %s\n", status,
                 flags_.controller_log.c_str());
    pid_ = -1;
    return true;
  }

 private:
  const Flags& flags_;
  pid_t pid_ = -1;
};

// What /proc says about the controller.
struct ProcSample {
  double cpu_seconds = 0;    // utime + stime.
  uint64_t write_bytes = 0;  // Written to storage (/proc/PID/io).
  uint64_t rss_kb = 0, hwm_kb = 0;
};

ProcSample ReadProc(pid_t pid) {
  ProcSample s;
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const size_t paren = text.rfind(')');
  if (paren != std::string::npos) {
    std::vector<std::string> fields = absl::StrSplit(text.substr(paren + 2), ' ');
    uint64_t utime = 0, stime = 0;
    // Fields 14 and 15 of stat(5); fields[0] is field 3.
    if (fields.size() > 13 && absl::SimpleAtoi(fields[11], &utime) &&
        absl::SimpleAtoi(fields[12], &stime)) {
      s.cpu_seconds =
          static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
    }
  }
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  for (std::string line; std::getline(status, line);) {
    std::istringstream in(line);
    std::string key;
    uint64_t kb = 0;
    in >> key >> kb;
    if (key == "VmRSS:") s.rss_kb = kb;
    if (key == "VmHWM:") s.hwm_kb = kb;
  }
  std::ifstream io(absl::StrCat("/proc/", pid, "/io"));
  for (std::string line; std::getline(io, line);) {
    std::istringstream in(line);
    std::string key;
    uint64_t bytes = 0;
    in >> key >> bytes;
    if (key == "write_bytes:") s.write_bytes = bytes;
  }
  return s;
}

uint64_t FileSize(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

std::unique_ptr<pb::Controller::Stub> WaitForController(int port, absl::Duration timeout) {
  auto channel =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
  if (!channel->WaitForConnected(absl::ToChronoTime(absl::Now() + timeout))) return nullptr;
  return pb::Controller::NewStub(channel);
}

// Submits the jobs and waits until every one is planned. Returns the shards in all plans.
int SubmitAndPlan(const Flags& flags, pb::Controller::Stub& stub) {
  std::vector<std::string> ids;
  for (const auto& [db, shards] : flags.jobs) {
    pb::SubmitJobRequest request;
    pb::JobSpec& spec = *request.mutable_spec();
    spec.mutable_source()->set_uri(flags.source);
    spec.mutable_target()->set_uri(flags.target);
    spec.add_dbs(db);
    spec.set_shards(shards);
    spec.set_parallel(flags.parallel);
    pb::SubmitJobResponse response;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    grpc::Status status = stub.SubmitJob(&context, request, &response);
    if (!status.ok()) {
      std::fprintf(stderr, "SubmitJob: %s\n", status.error_message().c_str());
      return -1;
    }
    ids.push_back(response.job_id());
  }
  int total = 0;
  for (const std::string& id : ids) {
    for (const absl::Time deadline = absl::Now() + absl::Minutes(5);;) {
      pb::GetJobRequest request;
      request.set_job_id(id);
      pb::Job job;
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
      grpc::Status status = stub.GetJob(&context, request, &job);
      if (status.ok() && job.progress().shards_total() > 0) {
        total += job.progress().shards_total();
        break;
      }
      if ((status.ok() && job.state() == pb::JOB_STATE_FAILED) || absl::Now() > deadline) {
        std::fprintf(stderr, "job %s not planned: %s\n", id.c_str(), job.error().c_str());
        return -1;
      }
      absl::SleepFor(absl::Milliseconds(200));
    }
  }
  return total;
}

// Waits until the fleet holds `want` leases; returns how long that took, or a negative value.
double WaitForLeases(const ferry::bench::Fleet& fleet, ControllerProcess& controller, int want,
                     absl::Duration timeout) {
  const absl::Time start = absl::Now();
  while (fleet.HeldLeases() < want) {
    if (absl::Now() - start > timeout || controller.Exited()) return -1;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::ToDoubleSeconds(absl::Now() - start);
}

struct Window {
  absl::Time time;
  ProcSample proc;
  uint64_t grants, acks, progress, finished, state_bytes;
};

Window Snapshot(ferry::bench::Fleet& fleet, pid_t pid, const std::string& state) {
  ferry::bench::FleetStats& s = fleet.stats();
  return {absl::Now(),
          ReadProc(pid),
          s.grants.load(),
          s.acks.load(),
          s.progress.load(),
          s.finished.load(),
          FileSize(state) + FileSize(state + "-wal")};
}

void Print(std::map<std::string, std::string>& results, const std::string& key, double value) {
  char text[32];
  std::snprintf(text, sizeof(text), value >= 100 ? "%.0f" : "%.3g", value);
  results[key] = text;
  std::printf("  %-22s %s\n", key.c_str(), results[key].c_str());
}

}  // namespace

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  // Debian's Abseil checks every lock order at run time: a tenth of the simulation's CPU.
  absl::SetMutexDeadlockDetectionMode(
      absl::OnDeadlockCycle::kIgnore);  // Progress shows while it runs, even through a pipe.
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) return 2;
  ControllerProcess controller(flags);
  if (!controller.Start()) return 1;
  auto stub = WaitForController(flags.port, absl::Seconds(30));
  if (stub == nullptr) return 1;
  const absl::Time plan_start = absl::Now();
  const int shards = SubmitAndPlan(flags, *stub);
  if (shards < 0) return 1;
  std::map<std::string, std::string> results;
  std::printf("planned %d shards in %.1f s\n", shards,
              absl::ToDoubleSeconds(absl::Now() - plan_start));

  ferry::bench::FleetOptions options;
  options.address = absl::StrCat("127.0.0.1:", flags.port);
  options.agents = flags.agents;
  options.slots = flags.slots;
  options.lease_time = absl::Seconds(flags.lease_seconds);
  ferry::bench::Fleet fleet(options);
  fleet.Start();
  const int want = std::min(flags.agents * flags.slots, shards);
  const double fill = WaitForLeases(fleet, controller, want, absl::Minutes(3));
  std::printf("%d agents x %d slots: %d leases held after %.1f s\n", flags.agents, flags.slots,
              fleet.HeldLeases(), fill);

  // Steady state: a window of `duration` seconds.
  absl::SleepFor(absl::Seconds(2));
  fleet.stats().ack_ms.Clear();
  fleet.stats().grant_ms.Clear();
  const Window a = Snapshot(fleet, controller.pid(), flags.state);
  uint64_t min_held = fleet.HeldLeases();
  while (absl::Now() - a.time < absl::Seconds(flags.duration)) {
    absl::SleepFor(absl::Milliseconds(250));
    min_held = std::min<uint64_t>(min_held, fleet.HeldLeases());
  }
  const Window b = Snapshot(fleet, controller.pid(), flags.state);
  const double secs = absl::ToDoubleSeconds(b.time - a.time);
  ferry::bench::FleetStats& s = fleet.stats();
  std::printf("RESULT\n");
  Print(results, "agents", flags.agents);
  Print(results, "slots", flags.slots);
  Print(results, "shards", shards);
  Print(results, "fill_s", fill);
  Print(results, "window_s", secs);
  Print(results, "min_held", static_cast<double>(min_held));
  Print(results, "grants_per_s", (b.grants - a.grants) / secs);
  Print(results, "finished_per_s", (b.finished - a.finished) / secs);
  Print(results, "progress_per_s", (b.progress - a.progress) / secs);
  Print(results, "acks_per_s", (b.acks - a.acks) / secs);
  Print(results, "ack_p50_ms", s.ack_ms.Percentile(50));
  Print(results, "ack_p99_ms", s.ack_ms.Percentile(99));
  Print(results, "ack_max_ms", s.ack_ms.Percentile(100));
  Print(results, "grant_p50_ms", s.grant_ms.Percentile(50));
  Print(results, "grant_p99_ms", s.grant_ms.Percentile(99));
  Print(results, "cpu_pct", 100 * (b.proc.cpu_seconds - a.proc.cpu_seconds) / secs);
  Print(results, "rss_mb", b.proc.rss_kb / 1024.0);
  Print(results, "hwm_mb", b.proc.hwm_kb / 1024.0);
  Print(results, "state_mb", b.state_bytes / 1048576.0);
  Print(results, "disk_write_mb_per_s",
        (b.proc.write_bytes - a.proc.write_bytes) / secs / 1048576.0);
  Print(results, "stream_errors", static_cast<double>(s.stream_errors.load()));

  if (flags.recovery) {
    const int held = fleet.HeldLeases();
    const uint64_t errors = s.stream_errors.load();
    const absl::Time kill_time = absl::Now();
    controller.Stop(SIGKILL);
    controller.Start();
    const absl::Time restart = absl::Now();
    // Every agent sees its stream break before the leases are counted again.
    while (s.stream_errors.load() < errors + static_cast<uint64_t>(flags.agents) &&
           absl::Now() - restart < absl::Seconds(10)) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    const double back = WaitForLeases(fleet, controller, std::min(held, want), absl::Minutes(5));
    Print(results, "recovery_leases", held);
    Print(results, "recovery_s", back < 0 ? -1 : back + absl::ToDoubleSeconds(restart - kill_time));
    Print(results, "recovery_hwm_mb", ReadProc(controller.pid()).hwm_kb / 1024.0);
  }
  fleet.Stop();
  controller.Stop(SIGTERM);
  return 0;
}
