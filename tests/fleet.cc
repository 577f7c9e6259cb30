#include "tests/fleet.h"

#include <signal.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace ferry::testing {
namespace {

constexpr absl::Duration kPoll = absl::Milliseconds(100);
constexpr absl::Duration kStartTimeout = absl::Seconds(60);

// Runs a short tool to completion; its output goes to `log`.
absl::Status RunTool(std::vector<std::string> argv, const std::string& log) {
  const std::string name = argv.front();
  SubprocessOptions options;
  options.log_file = log;
  absl::StatusOr<Subprocess> tool = Subprocess::Start(std::move(argv), options);
  if (!tool.ok()) return tool.status();
  absl::StatusOr<int> code = tool->Wait(absl::Seconds(60));
  if (!code.ok()) return code.status();
  if (*code != 0) {
    return absl::InternalError(absl::StrCat(name, " exited with ", *code, ": ", FileTail(log)));
  }
  return absl::OkStatus();
}

}  // namespace

Fleet::Fleet(FleetOptions options)
    : options_(std::move(options)), dir_(MakeTempDir("ferry-fleet-")), port_(FreeTcpPort()) {}

Fleet::~Fleet() {
  for (Subprocess& agent : agents_) agent.Kill();
  if (controller_.has_value()) controller_->Kill();
  if (!KeepTestDirs() && !dir_.empty()) (void)RemoveTree(dir_);
}

std::string Fleet::address() const { return absl::StrCat("127.0.0.1:", port_); }

std::vector<std::string> Fleet::ClientArgs() const {
  std::vector<std::string> args = {"--controller", address()};
  args.insert(args.end(), options_.client_flags.begin(), options_.client_flags.end());
  return args;
}

EnvList Fleet::ClientEnv(const EnvList& extra) const {
  EnvList env = options_.client_env;
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

absl::Status Fleet::StartController() {
  absl::Status status;
  for (int attempt = 0; attempt < 5; ++attempt) {
    status = LaunchController();
    if (status.ok()) {
      started_once_ = true;
      return status;
    }
    if (!absl::IsUnavailable(status)) return status;
    // The port was taken between FreeTcpPort() and the bind. A restart keeps its port (clients
    // know it) and only waits a little.
    if (started_once_) {
      absl::SleepFor(absl::Milliseconds(500));
    } else {
      port_ = FreeTcpPort();
    }
  }
  return status;
}

absl::Status Fleet::LaunchController() {
  if (controller_.has_value() && controller_->running()) {
    return absl::FailedPreconditionError("the controller is already running");
  }
  std::vector<std::string> argv = {FerryBinary("ferry-controller"), "--listen",
                                   absl::StrCat(options_.listen_host, ":", port_), "--state",
                                   state_path()};
  argv.insert(argv.end(), options_.controller_flags.begin(), options_.controller_flags.end());
  SubprocessOptions options;
  options.log_file = controller_log();
  absl::StatusOr<Subprocess> process = Subprocess::Start(argv, options);
  if (!process.ok()) return process.status();
  controller_ = *std::move(process);
  std::optional<int> exited;
  absl::Status ready = WaitFor(
      [&] {
        exited = controller_->TryWait();
        if (exited.has_value()) return true;
        return Ferry("list", {"--timeout", "2"}, {}, absl::Seconds(10)).exit_code == 0;
      },
      kStartTimeout, kPoll);
  if (exited.has_value()) {
    const std::string log = FileTail(controller_log());
    const std::string message = absl::StrCat("ferry-controller exited with ", *exited, ": ", log);
    return absl::StrContains(log, "cannot listen") ? absl::UnavailableError(message)
                                                   : absl::InternalError(message);
  }
  if (!ready.ok()) {
    return absl::DeadlineExceededError(absl::StrCat(
        "ferry-controller does not answer `ferry list`: ", FileTail(controller_log())));
  }
  return absl::OkStatus();
}

void Fleet::KillController() {
  if (controller_.has_value()) controller_->Kill();
}

absl::StatusOr<int> Fleet::StopController(absl::Duration timeout) {
  if (!controller_.has_value()) return absl::FailedPreconditionError("no controller");
  if (absl::Status s = controller_->Signal(SIGTERM); !s.ok()) return s;
  return controller_->Wait(timeout);
}

std::string Fleet::agent_name(int index) const { return absl::StrCat("agent-", index); }

std::string Fleet::agent_log(int index) const {
  return absl::StrCat(dir_, "/", agent_name(index), ".log");
}

absl::StatusOr<int> Fleet::StartAgent(int slots, const std::vector<std::string>& extra_flags,
                                      const EnvList& extra_env) {
  const int index = agent_count();
  std::vector<std::string> argv = {FerryBinary("ferry-agent"), "--slots", std::to_string(slots),
                                   "--name", agent_name(index)};
  for (const std::string& arg : ClientArgs()) argv.push_back(arg);
  argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
  SubprocessOptions options;
  options.log_file = agent_log(index);
  options.env = ClientEnv(extra_env);
  absl::StatusOr<Subprocess> process = Subprocess::Start(argv, options);
  if (!process.ok()) return process.status();
  agents_.push_back(*std::move(process));
  return index;
}

absl::Status Fleet::StartAgents(int n, int slots) {
  for (int i = 0; i < n; ++i) {
    absl::StatusOr<int> index = StartAgent(slots);
    if (!index.ok()) return index.status();
  }
  int running = 0;
  for (Subprocess& agent : agents_) running += agent.running() ? 1 : 0;
  return WaitForAgents(running);
}

void Fleet::KillAgent(int index) { agents_.at(index).Kill(); }

absl::StatusOr<int> Fleet::StopAgent(int index, absl::Duration timeout) {
  Subprocess& agent = agents_.at(index);
  if (absl::Status s = agent.Signal(SIGTERM); !s.ok()) return s;
  return agent.Wait(timeout);
}

absl::Status Fleet::WaitForAgents(int n, absl::Duration timeout) {
  std::string last;
  absl::Status status = WaitFor(
      [&] {
        CliResult r =
            Ferry("agents", {"--output", "json", "--timeout", "5"}, {}, absl::Seconds(20));
        last = r.output;
        if (r.exit_code != 0) return false;
        size_t count = 0;
        for (size_t pos = 0; (pos = r.output.find("\"agent_id\":", pos)) != std::string::npos;
             ++pos) {
          ++count;
        }
        return static_cast<int>(count) == n;
      },
      timeout, kPoll);
  if (!status.ok()) {
    return absl::DeadlineExceededError(
        absl::StrCat("`ferry agents` does not list ", n, " agents: ", last));
  }
  return absl::OkStatus();
}

std::optional<int> Fleet::AgentRunning(int index) {
  CliResult r = Ferry("agents", {"--output", "json"}, {}, absl::Seconds(30));
  if (r.exit_code != 0) return std::nullopt;
  const size_t name = r.output.find(absl::StrCat("\"name\":\"", agent_name(index), "\""));
  if (name == std::string::npos) return std::nullopt;
  const size_t begin = r.output.rfind('{', name);
  const size_t end = r.output.find('}', name);
  if (begin == std::string::npos || end == std::string::npos) return std::nullopt;
  return static_cast<int>(JsonInt(r.output.substr(begin, end - begin), "running"));
}

CliResult Fleet::Ferry(const std::string& command, const std::vector<std::string>& args,
                       const EnvList& env, absl::Duration timeout) {
  std::vector<std::string> argv = {command};
  argv.insert(argv.end(), args.begin(), args.end());
  for (const std::string& arg : ClientArgs()) argv.push_back(arg);
  return RunFerry(argv, ClientEnv(env), timeout);
}

SubmitResult Fleet::Submit(const std::vector<std::string>& args, const EnvList& env) {
  SubmitResult result;
  const std::string dir = MakeTempDir("ferry-fleet-submit-");
  const std::string out = dir + "/stdout", err = dir + "/stderr";
  // A shell only to send stderr to its own file; `exec` leaves ferry as the child.
  std::vector<std::string> argv = {"/bin/sh", "-c",          "exec \"$@\" 2>\"$FERRY_TEST_STDERR\"",
                                   "sh",      FerryBinary(), "submit"};
  argv.insert(argv.end(), args.begin(), args.end());
  for (const std::string& arg : ClientArgs()) argv.push_back(arg);
  SubprocessOptions options;
  options.log_file = out;
  options.env = ClientEnv(env);
  options.env.emplace_back("FERRY_TEST_STDERR", err);
  absl::StatusOr<Subprocess> process = Subprocess::Start(argv, options);
  if (process.ok()) {
    absl::StatusOr<int> code = process->Wait(absl::Minutes(2));
    result.exit_code = code.ok() ? *code : -1000;
  } else {
    result.err = std::string(process.status().message());
  }
  result.out = ReadFile(out);
  result.err += ReadFile(err);
  if (result.exit_code == 0) {
    result.job_id = std::string(absl::StripSuffix(result.out, "\n"));
  }
  (void)RemoveTree(dir);
  return result;
}

CliResult Fleet::Watch(const std::string& job_id, absl::Duration timeout) {
  return Ferry("watch", {job_id, "--progress", "none", "--output", "json"}, {}, timeout);
}

absl::StatusOr<std::string> Fleet::StatusJson(const std::string& job_id) {
  CliResult r = Ferry("status", {job_id, "--output", "json"}, {}, absl::Seconds(60));
  if (r.exit_code != 0) {
    return absl::UnavailableError(
        absl::StrCat("ferry status exited with ", r.exit_code, ": ", r.output));
  }
  return r.output;
}

std::string Fleet::State(const std::string& job_id) {
  absl::StatusOr<std::string> json = StatusJson(job_id);
  return json.ok() ? JsonScalar(*json, "state") : "";
}

int64_t Fleet::Counter(const std::string& job_id, const std::string& counter) {
  absl::StatusOr<std::string> json = StatusJson(job_id);
  return json.ok() ? JsonInt(*json, counter) : -1;
}

absl::Status Fleet::WaitForState(const std::string& job_id, const std::string& state,
                                 absl::Duration timeout) {
  std::string last;
  absl::Status status = WaitFor(
      [&] {
        last = State(job_id);
        return last == state;
      },
      timeout, kPoll);
  if (!status.ok()) {
    return absl::DeadlineExceededError(
        absl::StrCat("job ", job_id, " is ", last.empty() ? "unknown" : last, ", not ", state));
  }
  return absl::OkStatus();
}

std::string Fleet::AllLogs() const {
  std::string all = ReadFile(controller_log());
  for (int i = 0; i < agent_count(); ++i) all += ReadFile(agent_log(i));
  return all;
}

std::string JsonScalar(absl::string_view json, absl::string_view field) {
  const std::string needle = absl::StrCat("\"", field, "\":");
  const size_t pos = json.find(needle);
  if (pos == absl::string_view::npos) return "";
  absl::string_view rest = json.substr(pos + needle.size());
  if (absl::ConsumePrefix(&rest, "\"")) return std::string(rest.substr(0, rest.find('"')));
  return std::string(rest.substr(0, rest.find_first_of(",}]")));
}

int64_t JsonInt(absl::string_view json, absl::string_view field) {
  int64_t value = 0;
  if (!absl::SimpleAtoi(JsonScalar(json, field), &value)) return 0;
  return value;
}

int64_t TotalKeys(const RedisServer& server) {
  absl::StatusOr<redis::Connection> conn = server.Connect();
  if (!conn.ok()) return -1;
  absl::StatusOr<redis::Reply> info = conn->Command({"INFO", "keyspace"});
  if (!info.ok()) return -1;
  int64_t total = 0;
  // Lines like "db3:keys=1000,expires=20,avg_ttl=0".
  for (absl::string_view line : absl::StrSplit(info->str(), absl::ByAnyChar("\r\n"))) {
    if (!absl::StartsWith(line, "db")) continue;
    const size_t keys = line.find("keys=");
    if (keys == absl::string_view::npos) continue;
    absl::string_view value = line.substr(keys + 5);
    int64_t n = 0;
    if (absl::SimpleAtoi(value.substr(0, value.find(',')), &n)) total += n;
  }
  return total;
}

absl::StatusOr<std::string> GenerateSelfSignedCert(const std::string& dir) {
  const std::string config = dir + "/cert.cnf";
  if (absl::Status s = WriteTextFile(config, R"([req]
distinguished_name = dn
prompt = no
x509_extensions = v3
[dn]
CN = localhost
[v3]
basicConstraints = critical,CA:TRUE
keyUsage = critical,digitalSignature,keyEncipherment,keyCertSign
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
)");
      !s.ok()) {
    return s;
  }
  const std::string cert = dir + "/cert.pem";
  if (absl::Status s = RunTool({"openssl", "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt",
                                "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                                dir + "/key.pem", "-out", cert, "-days", "3", "-config", config},
                               dir + "/openssl.log");
      !s.ok()) {
    return s;
  }
  return cert;
}

absl::Status WriteTextFile(const std::string& path, absl::string_view content) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  }
  if (chmod(path.c_str(), 0600) != 0) return absl::InternalError(absl::StrCat("chmod ", path));
  return absl::OkStatus();
}

}  // namespace ferry::testing
