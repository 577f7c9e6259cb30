// ferry-controller: turns flags into ControllerOptions, starts the controller and stops it on
// SIGTERM or SIGINT.

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/rpc/credentials.h"
#include "common/rpc/log_flags.h"
#include "server/controller.h"
#include "server/copy_planner.h"

namespace {

constexpr char kUsage[] =
    "usage: ferry-controller [--listen ADDR] [--state FILE] [--tls-cert FILE --tls-key FILE]\n"
    "                        [--token-file FILE] [--insecure] [--metrics-listen ADDR]\n"
    "                        [--plan-retry-seconds N] [--log-format text|json]\n"
    "                        [--log-level LEVEL]\n"
    "\n"
    "  --listen ADDR      gRPC address (default 127.0.0.1:7420); a non-loopback address\n"
    "                     needs TLS and a token unless --insecure\n"
    "  --state FILE       SQLite state file, created with mode 0600 (default ./ferry-state.db)\n"
    "  --tls-cert FILE    PEM certificate chain of the controller\n"
    "  --tls-key FILE     PEM private key of the controller\n"
    "  --token-file FILE  bearer token that agents and clients must send\n"
    "  --insecure         allow a non-loopback address without TLS or token (and a\n"
    "                     non-loopback --metrics-listen without TLS)\n"
    "  --metrics-listen ADDR  serve Prometheus metrics at http://ADDR/metrics (https with\n"
    "                     --tls-cert and --tls-key); a non-loopback address needs TLS\n"
    "                     unless --insecure\n"
    "  --plan-retry-seconds N  how long a job's planning is retried after a transient error\n"
    "                     (a server unreachable, stopped, loading, failing over), the job\n"
    "                     pending meanwhile; then it fails (default 60, 0: fail at once)\n"
    "  --log-format text|json  log lines to stderr as text (default) or JSON objects\n"
    "  --log-level LEVEL  debug, info (default), warning or error\n";

struct Flags {
  ferry::server::ControllerOptions options;
  std::string token_file;
};

// Parses `--name value` and `--name=value`. Returns false (after printing why) on an error.
bool ParseFlags(int argc, char** argv, Flags* flags) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool has_inline_value = false;
    if (size_t eq = arg.find('='); absl::StartsWith(arg, "--") && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_inline_value = true;
    }
    auto take = [&](std::string* out) {
      if (has_inline_value) {
        *out = value;
        return true;
      }
      if (i + 1 >= argc) {
        std::fprintf(stderr, "ferry-controller: %s needs a value\n", arg.c_str());
        return false;
      }
      *out = argv[++i];
      return true;
    };
    ferry::server::ControllerOptions& o = flags->options;
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (arg == "--listen") {
      if (!take(&o.listen)) return false;
    } else if (arg == "--state") {
      if (!take(&o.state_path)) return false;
    } else if (arg == "--tls-cert") {
      if (!take(&o.tls_cert)) return false;
    } else if (arg == "--tls-key") {
      if (!take(&o.tls_key)) return false;
    } else if (arg == "--token-file") {
      if (!take(&flags->token_file)) return false;
    } else if (arg == "--insecure" && !has_inline_value) {
      o.insecure = true;
    } else if (arg == "--metrics-listen") {
      if (!take(&o.metrics_listen)) return false;
    } else if (arg == "--plan-retry-seconds") {
      std::string seconds;
      if (!take(&seconds)) return false;
      double parsed = 0;
      if (!absl::SimpleAtod(seconds, &parsed) || !(parsed >= 0) || parsed > 86400) {
        std::fprintf(stderr, "ferry-controller: --plan-retry-seconds must be 0 to 86400, not %s\n",
                     seconds.c_str());
        return false;
      }
      o.plan_retry_budget = absl::Seconds(parsed);
    } else if (arg == "--log-format" || arg == "--log-level") {
      std::string name;
      if (!take(&name)) return false;
      if (absl::Status status = ferry::rpc::ApplyLogFlag(arg, name); !status.ok()) {
        std::fprintf(stderr, "ferry-controller: %s\n", std::string(status.message()).c_str());
        return false;
      }
    } else {
      std::fprintf(stderr, "ferry-controller: unknown argument %s\n%s", arg.c_str(), kUsage);
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  ferry::SetLogComponent("controller");
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) return 2;
  if (!flags.token_file.empty()) {
    absl::StatusOr<std::string> token = ferry::rpc::ReadTokenFile(flags.token_file);
    if (!token.ok()) {
      std::fprintf(stderr, "ferry-controller: %s\n", std::string(token.status().message()).c_str());
      return 2;
    }
    flags.options.token = *token;
  }

  // Block the stop signals in every thread (gRPC's included) and wait for them here.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  ferry::server::CopyPlanner planner;
  auto controller = ferry::server::Controller::Start(flags.options, &planner);
  if (!controller.ok()) {
    std::fprintf(stderr, "ferry-controller: %s\n",
                 std::string(controller.status().message()).c_str());
    return 1;
  }
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  FERRY_LOG(Info) << "received " << strsignal(signal_number);
  (*controller)->Shutdown();
  return 0;
}
