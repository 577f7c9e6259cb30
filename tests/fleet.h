#pragma once

// A ferry fleet for integration tests: one real ferry-controller process (a free port, its state
// file in the fleet's own temp dir), ferry-agent processes, and the ferry CLI pointed at it.
// Every process logs to a file in the fleet's dir, so tests can read what was logged. Test
// support only; one test thread drives a Fleet.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/testing/process.h"
#include "common/testing/redis_server.h"
#include "tests/ferry_cli.h"

namespace ferry::testing {

using EnvList = std::vector<std::pair<std::string, std::string>>;

struct FleetOptions {
  // Host of --listen. The CLI and the agents always dial 127.0.0.1:PORT.
  std::string listen_host = "127.0.0.1";
  // More ferry-controller flags (--tls-cert, --token-file, --insecure...).
  std::vector<std::string> controller_flags;
  // Added to every CLI call and agent (e.g. --tls-ca FILE).
  std::vector<std::string> client_flags;
  // Environment of every CLI call and agent (e.g. FERRY_TOKEN).
  EnvList client_env;
};

// What `ferry submit` printed, stdout and stderr apart.
struct SubmitResult {
  int exit_code = -1;
  std::string out;
  std::string err;
  std::string job_id;  // `out` without its newline, when the exit code is 0.
};

class Fleet {
 public:
  // Makes the dir and picks a port; starts nothing.
  explicit Fleet(FleetOptions options = {});
  // Kills every process; removes the dir unless FERRY_KEEP_TEST_DIRS=1.
  ~Fleet();
  Fleet(const Fleet&) = delete;
  Fleet& operator=(const Fleet&) = delete;

  const std::string& dir() const { return dir_; }
  int port() const { return port_; }
  // What clients dial: "127.0.0.1:PORT".
  std::string address() const;
  std::string state_path() const { return dir_ + "/ferry-state.db"; }
  std::string controller_log() const { return dir_ + "/controller.log"; }

  // Starts ferry-controller (again: same port, same state file) and returns once `ferry list`
  // answers. On the first start a port somebody took meanwhile is replaced by another.
  absl::Status StartController();
  // SIGKILL.
  void KillController();
  // SIGTERM; the exit code.
  absl::StatusOr<int> StopController(absl::Duration timeout = absl::Seconds(30));

  // Starts agent number agent_count() as "agent-<n>" and returns n; does not wait for it to
  // register.
  absl::StatusOr<int> StartAgent(int slots = 2, const std::vector<std::string>& extra_flags = {},
                                 const EnvList& extra_env = {});
  // Starts `n` agents and waits until `ferry agents` lists every running one.
  absl::Status StartAgents(int n, int slots = 2);
  int agent_count() const { return static_cast<int>(agents_.size()); }
  std::string agent_name(int index) const;
  std::string agent_log(int index) const;
  Subprocess& agent(int index) { return agents_.at(index); }
  // SIGKILL.
  void KillAgent(int index);
  // SIGTERM; the exit code.
  absl::StatusOr<int> StopAgent(int index, absl::Duration timeout = absl::Seconds(60));
  // Polls `ferry agents` until it lists exactly `n` agents.
  absl::Status WaitForAgents(int n, absl::Duration timeout = absl::Seconds(60));
  // `running` of the agent named agent_name(index) in `ferry agents`; nullopt when not listed.
  std::optional<int> AgentRunning(int index);

  // `ferry COMMAND ARGS... --controller ADDR [client flags]` with the client env plus `env`.
  CliResult Ferry(const std::string& command, const std::vector<std::string>& args = {},
                  const EnvList& env = {}, absl::Duration timeout = absl::Minutes(5));
  // `ferry submit ARGS...`, keeping stdout apart from stderr.
  SubmitResult Submit(const std::vector<std::string>& args, const EnvList& env = {});
  // `ferry watch JOB --progress none --output json`: exits when the job ends.
  CliResult Watch(const std::string& job_id, absl::Duration timeout = absl::Minutes(5));
  // `ferry status JOB --output json` (the Job message as JSON); the CLI's output on failure.
  absl::StatusOr<std::string> StatusJson(const std::string& job_id);
  // The job's state as the API spells it ("JOB_STATE_RUNNING"); empty when status fails.
  std::string State(const std::string& job_id);
  // A counter of the job's progress ("copied", "scanned"...); -1 when status fails.
  int64_t Counter(const std::string& job_id, const std::string& counter);
  // Polls `ferry status` until the job is in `state` ("JOB_STATE_...").
  absl::Status WaitForState(const std::string& job_id, const std::string& state,
                            absl::Duration timeout = absl::Seconds(60));

  // The controller's log and every agent's log, one after the other.
  std::string AllLogs() const;

 private:
  absl::Status LaunchController();
  std::vector<std::string> ClientArgs() const;
  EnvList ClientEnv(const EnvList& extra) const;

  FleetOptions options_;
  std::string dir_;
  int port_ = -1;
  bool started_once_ = false;
  std::optional<Subprocess> controller_;
  std::vector<Subprocess> agents_;
};

// The scalar value of the first `"field":` in `json`, without quotes (proto3 JSON prints 64-bit
// integers as strings); empty when absent.
std::string JsonScalar(absl::string_view json, absl::string_view field);
// JsonScalar as an integer; 0 when absent (proto3 JSON leaves out zero values).
int64_t JsonInt(absl::string_view json, absl::string_view field);

// Keys in every database of `server` (INFO keyspace); -1 on error.
int64_t TotalKeys(const RedisServer& server);

// Writes a self-signed certificate and key for CN localhost, SAN DNS:localhost and
// IP:127.0.0.1 into `dir` (cert.pem, key.pem); returns the certificate's path.
absl::StatusOr<std::string> GenerateSelfSignedCert(const std::string& dir);

// Writes `content` to `path` with mode 0600.
absl::Status WriteTextFile(const std::string& path, absl::string_view content);

}  // namespace ferry::testing
