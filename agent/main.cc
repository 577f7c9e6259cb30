// ferry-agent: runs the shards a ferry-controller leases to it. Turns flags into AgentOptions and
// runs the Agent; SIGTERM or SIGINT drains it (shards are handed back at their checkpoints).

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/metrics.h"
#include "agent/session.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/metrics/http_server.h"
#include "common/metrics/registry.h"
#include "common/rpc/credentials.h"
#include "common/rpc/log_flags.h"

namespace {

constexpr char kUsage[] = R"(Usage: ferry-agent [flags]

Connects to a ferry-controller and copies the shards it leases, several at once.
SIGTERM or SIGINT hands running shards back at their last checkpoint, then exits 0.
A controller that refuses the token makes it exit 3 at once.

Flags:
  --controller ADDR   controller address (default: $FERRY_CONTROLLER, then 127.0.0.1:7420)
  --slots N           shards to run at once (default 2)
  --name NAME         name shown by `ferry agents` (default: hostname:pid)
  --token-file FILE   bearer token for the controller (default: $FERRY_TOKEN)
  --tls-ca FILE       use TLS to the controller, trusting the CAs in FILE
  --tls               use TLS to the controller, trusting the system's CAs
  --metrics-listen ADDR  serve Prometheus metrics at http://ADDR/metrics; a non-loopback
                      address needs --metrics-tls-cert and --metrics-tls-key (https) or
                      --metrics-insecure
  --metrics-tls-cert FILE, --metrics-tls-key FILE
                      PEM certificate chain and key of the metrics endpoint
  --metrics-insecure  allow a non-loopback --metrics-listen without TLS
  --log-format text|json  log lines to stderr as text (default) or JSON objects
  --log-level LEVEL   debug, info (default), warning or error
  --help              show this text
)";

// What main() needs besides the agent's options.
struct MainFlags {
  ferry::metrics::MetricsServerOptions metrics;
};

// Parses argv into options; the error is for the operator.
absl::Status ParseFlags(int argc, char** argv, ferry::agent::AgentOptions& options,
                        MainFlags& main_flags, bool& help) {
  std::optional<std::string> token_file;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    std::optional<std::string> value;
    if (const size_t eq = flag.find('='); absl::StartsWith(flag, "--") && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag.resize(eq);
    }
    if (flag == "--help" || flag == "-h") {
      help = true;
      return absl::OkStatus();
    }
    if (flag == "--tls" && !value) {
      options.tls = true;
      continue;
    }
    if (flag == "--metrics-insecure" && !value) {
      main_flags.metrics.insecure = true;
      continue;
    }
    if (flag != "--controller" && flag != "--slots" && flag != "--name" && flag != "--token-file" &&
        flag != "--tls-ca" && flag != "--metrics-listen" && flag != "--metrics-tls-cert" &&
        flag != "--metrics-tls-key" && flag != "--log-format" && flag != "--log-level") {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag or argument '", flag, "'"));
    }
    if (!value) {
      if (i + 1 >= argc) return absl::InvalidArgumentError(absl::StrCat(flag, " needs a value"));
      value = argv[++i];
    }
    if (flag == "--controller") {
      options.controller_address = *value;
    } else if (flag == "--slots") {
      if (!absl::SimpleAtoi(*value, &options.slots) || options.slots < 1) {
        return absl::InvalidArgumentError("--slots needs a positive number");
      }
    } else if (flag == "--name") {
      options.name = *value;
    } else if (flag == "--token-file") {
      token_file = *value;
    } else if (flag == "--tls-ca") {
      options.tls_ca_file = *value;
      options.tls = true;
    } else if (flag == "--metrics-listen") {
      main_flags.metrics.listen = *value;
    } else if (flag == "--metrics-tls-cert") {
      main_flags.metrics.tls_cert = *value;
    } else if (flag == "--metrics-tls-key") {
      main_flags.metrics.tls_key = *value;
    } else {
      FERRY_RETURN_IF_ERROR(ferry::rpc::ApplyLogFlag(flag, *value));
    }
  }
  if (token_file) {
    absl::StatusOr<std::string> token = ferry::rpc::ReadTokenFile(*token_file);
    if (!token.ok()) return token.status();
    options.token = *std::move(token);
  } else if (const char* env = std::getenv("FERRY_TOKEN"); env != nullptr && *env != '\0') {
    options.token = env;
  }
  return ferry::agent::Agent::ValidateOptions(options);
}

}  // namespace

int main(int argc, char** argv) {
  ferry::agent::AgentOptions options;
  const char* env_controller = std::getenv("FERRY_CONTROLLER");
  options.controller_address =
      env_controller != nullptr && *env_controller != '\0' ? env_controller : "127.0.0.1:7420";
  ferry::SetLogComponent("agent");
  MainFlags main_flags;
  main_flags.metrics.insecure_flag = "--metrics-insecure";
  bool help = false;
  if (absl::Status status = ParseFlags(argc, argv, options, main_flags, help); !status.ok()) {
    std::cerr << "ferry-agent: " << status.message() << " (see ferry-agent --help)\n";
    return 2;
  }
  if (help) {
    std::cout << kUsage;
    return 0;
  }

  // Signals are taken by one thread with sigwait, so the handler may take locks. Blocked before
  // any other thread starts, so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // The registry, the agent's instruments and the endpoint outlive the agent (declared before it).
  ferry::metrics::Registry registry;
  ferry::agent::AgentMetrics agent_metrics(registry, options.slots);
  options.metrics = &agent_metrics;
  options.copy.source_io = agent_metrics.source_io();
  options.copy.target_io = agent_metrics.target_io();
  std::unique_ptr<ferry::metrics::MetricsServer> metrics_server;
  if (!main_flags.metrics.listen.empty()) {
    auto started = ferry::metrics::MetricsServer::Start(main_flags.metrics, &registry);
    if (!started.ok()) {
      std::cerr << "ferry-agent: " << started.status().message() << "\n";
      return 2;
    }
    metrics_server = *std::move(started);
  }
  std::unique_ptr<ferry::agent::Agent> agent = ferry::agent::Agent::Create(options);
  if (agent == nullptr) return 2;
  std::atomic<bool> stopped{false};
  std::thread signal_thread([&signals, &stopped, agent = agent.get()] {
    for (int received = 0;; ++received) {
      int signal_number = 0;
      if (sigwait(&signals, &signal_number) != 0) continue;
      if (stopped) return;
      if (received > 0) {
        FERRY_LOG(Warning) << "second signal: exiting without draining";
        std::_Exit(1);
      }
      FERRY_LOG(Info) << "signal " << signal_number << ": draining";
      agent->Shutdown();
    }
  });
  const absl::Status status = agent->Run();
  // Wakes the signal thread so it ends before the agent is destroyed.
  stopped = true;
  kill(getpid(), SIGTERM);
  signal_thread.join();
  if (!status.ok()) {
    // Only a refusal by the controller ends Run() with an error: exit 3 like the CLI does when
    // it cannot authenticate, so a supervisor sees a failure rather than a clean stop.
    std::cerr << "ferry-agent: " << status.message() << "\n";
    return 3;
  }
  return 0;
}
