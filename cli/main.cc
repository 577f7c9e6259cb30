// ferry: the command line. main() only turns flags into options structs and calls a library.

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/args.h"
#include "cli/gen.h"
#include "cli/job_options.h"
#include "cli/migrate.h"
#include "cli/preflight.h"
#include "cli/remote.h"
#include "common/base/logging.h"

namespace {

using ferry::cli::Args;
using ferry::cli::FlagSpec;

std::atomic<bool> g_stop{false};

void OnSignal(int) {
  if (g_stop.exchange(true)) _exit(130);  // A second Ctrl-C does not wait.
  const char msg[] = "\nstopping at the next batch boundary (Ctrl-C again to quit at once)\n";
  (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
}

constexpr char kUsage[] =
    "ferry: copy Redis data between servers with SCAN + DUMP + RESTORE, and verify it.\n\n"
    "Commands:\n"
    "  migrate   copy a source server into a target, in this process\n"
    "  verify    compare a target with its source, both ways, in this process\n"
    "  preflight run every check a migration would, write nothing, report the findings\n"
    "  gen       write random test data to a server, or RESP for redis-cli --pipe\n"
    "\nWith a controller (--controller ADDR, default $FERRY_CONTROLLER or 127.0.0.1:7420):\n"
    "  submit    submit a job; prints its id\n"
    "  status    show a job (--failed lists failed keys, --differences a verification's)\n"
    "  watch     follow a job until it ends or its cutover is ready; exits like migrate\n"
    "  cutover   cut a live job over once the writers are stopped, then verify\n"
    "  list      list jobs\n"
    "  cancel    cancel a job\n"
    "  pause     pause a job\n"
    "  resume    resume a paused job\n"
    "  agents    list connected agents\n"
    "\nRun `ferry COMMAND --help` for the options of a command.\n";

int UsageError(const std::string& message) {
  std::fprintf(stderr, "error: %s\nRun with --help for usage.\n", message.c_str());
  return 2;
}

// `ferry migrate` and `ferry verify`: a whole job in this process.
int RunLocal(const std::vector<std::string>& argv, bool verify) {
  // The embedded controller and agents log for operators of a fleet; here the job's own
  // report says what went wrong, so only errors it does not show, unless FERRY_LOG_LEVEL says
  // otherwise.
  if (std::getenv("FERRY_LOG_LEVEL") == nullptr) {
    ferry::SetMinLogLevel(ferry::LogLevel::kError);
  }
  const std::vector<FlagSpec> specs = ferry::cli::LocalFlags(verify);
  absl::StatusOr<Args> args = Args::Parse(argv, specs);
  if (!args.ok()) return UsageError(std::string(args.status().message()));
  if (args->Has("help")) {
    const std::string help =
        verify ? ferry::cli::HelpText(
                     "ferry verify --from URI --to URI [options]",
                     "Compares the target with the source and writes nothing: every source key "
                     "is looked for on\nthe target (missing, type, value, TTL) and every target "
                     "key on the source (extra). A key\nthat differs is read again before it is "
                     "reported, so a source written to meanwhile gives\nno false report.\n"
                     "Passwords: FERRY_FROM_PASSWORD and FERRY_TO_PASSWORD when the URIs have "
                     "none.\nExit codes: 0 equal, 1 differences found, 2 usage or configuration "
                     "error, 3 cannot connect,\nauthenticate or lacks permission, 130 "
                     "interrupted.",
                     specs)
               : ferry::cli::HelpText(
                     "ferry migrate --from URI --to URI [options]",
                     "Copies every key, value and TTL of the source into the target.\n"
                     "With --live it then follows the source's writes until a cutover: stop "
                     "the writers, then\nferry cutover --controller ADDR JOB from another "
                     "shell (ADDR: --listen).\n"
                     "Passwords: FERRY_FROM_PASSWORD and FERRY_TO_PASSWORD when the URIs have "
                     "none.\nExit codes: 0 every key copied (and, with --verify, the target "
                     "equal to the source; with\n--live, converged and verified equal), 1 some "
                     "keys failed (or differ), 2 usage or configuration\nerror, 3 cannot "
                     "connect, authenticate or lacks permission, 130 interrupted (the state "
                     "is\nkept: the same command with --state FILE resumes).",
                     specs);
    std::fputs(help.c_str(), stdout);
    return 0;
  }
  if (!args->positional().empty())
    return UsageError("unexpected argument " + args->positional()[0]);
  ferry::cli::MigrateOptions options;
  absl::StatusOr<ferry::cli::JobRequest> job =
      ferry::cli::JobRequestFromArgs(*args, &options.warnings);
  if (!job.ok()) return UsageError(std::string(job.status().message()));
  options.job = *std::move(job);
  if (!verify && options.job.verify) {
    return UsageError("--verify-only is for ferry submit: run ferry verify");
  }
  options.job.verify = verify;
  options.verify_after = !verify && args->Has("verify");
  if (absl::Status s =
          ferry::cli::ParseProgressMode(args->Get("progress", "auto"), &options.progress);
      !s.ok()) {
    return UsageError(std::string(s.message()));
  }
  const std::string output = args->Get("output", "text");
  if (output != "text" && output != "json") {
    return UsageError("--output must be text or json, not \"" + output + "\"");
  }
  options.json = output == "json";
  absl::StatusOr<int64_t> agents = args->GetInt("agents", 2, 1, 64);
  if (!agents.ok()) return UsageError(std::string(agents.status().message()));
  options.agents = static_cast<int>(*agents);
  options.state_path = args->Get("state");
  absl::StatusOr<double> plan_retry = args->GetDouble("plan-retry-seconds", 10, 0);
  if (!plan_retry.ok()) return UsageError(std::string(plan_retry.status().message()));
  options.plan_retry = absl::Seconds(*plan_retry);
  if (!verify) {
    absl::StatusOr<ferry::cli::ServeRequest> serve = ferry::cli::ServeRequestFromArgs(*args);
    if (!serve.ok()) return UsageError(std::string(serve.status().message()));
    options.serve = *std::move(serve);
    absl::StatusOr<ferry::cli::CutoverVerify> cutover_verify =
        ferry::cli::ParseCutoverVerify("--cutover-verify", args->Get("cutover-verify", "quick"));
    if (!cutover_verify.ok()) return UsageError(std::string(cutover_verify.status().message()));
    options.cutover_verify = *cutover_verify;
  }
  return ferry::cli::RunMigrate(options, &g_stop);
}

int Gen(const std::vector<std::string>& argv) {
  const std::vector<FlagSpec> specs = {
      {"to", "URI", "server to write to (password: FERRY_TO_PASSWORD)"},
      {"resp", "", "print RESP commands on stdout for `redis-cli --pipe` instead"},
      {"keys", "N", "number of keys (default 100000)"},
      {"types", "TYPE",
       "string, hash, list, set, zset, stream, hll, geo, bitmap or mixed "
       "(default)"},
      {"ttl-fraction", "F", "share of keys with a TTL of 10 to 60 minutes (default 0)"},
      {"value-size", "B", "bytes per string value (default 100)"},
      {"seed", "N", "random seed (default 1)"},
      {"prefix", "P", "key name prefix (default key:)"},
      {"help", "", "show this help"},
  };
  absl::StatusOr<Args> args = Args::Parse(argv, specs);
  if (!args.ok()) return UsageError(std::string(args.status().message()));
  if (args->Has("help")) {
    std::fputs(ferry::cli::HelpText("ferry gen (--to URI | --resp) [options]",
                                    "Writes random keys of the chosen types.", specs)
                   .c_str(),
               stdout);
    return 0;
  }
  ferry::cli::GenOptions options;
  if (args->Has("to") == args->Has("resp"))
    return UsageError("give exactly one of --to and --resp");
  if (args->Has("to")) {
    const char* env = std::getenv("FERRY_TO_PASSWORD");
    absl::StatusOr<ferry::redis::Endpoint> target =
        ferry::redis::ParseEndpointUri(args->Get("to"), env ? env : "");
    if (!target.ok()) return UsageError("--to: " + std::string(target.status().message()));
    options.target = *target;
  }
  absl::StatusOr<int64_t> keys = args->GetInt("keys", 100000, 0, int64_t{1} << 40);
  absl::StatusOr<double> ttl = args->GetDouble("ttl-fraction", 0, 0);
  absl::StatusOr<int64_t> size = args->GetInt("value-size", 100, 0, 512 << 20);
  absl::StatusOr<int64_t> seed = args->GetInt("seed", 1, 0, INT64_MAX);
  for (const absl::Status& s : {keys.status(), ttl.status(), size.status(), seed.status()}) {
    if (!s.ok()) return UsageError(std::string(s.message()));
  }
  if (*ttl > 1) return UsageError("--ttl-fraction must be between 0 and 1");
  options.keys = static_cast<uint64_t>(*keys);
  options.ttl_fraction = *ttl;
  options.value_size = static_cast<int>(*size);
  options.seed = static_cast<uint64_t>(*seed);
  options.types = args->Get("types", "mixed");
  options.prefix = args->Get("prefix", "key:");
  return ferry::cli::RunGen(options);
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGPIPE, SIG_IGN);
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "help") == 0) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  const std::vector<std::string> rest(argv + 2, argv + argc);
  if (command == "migrate") return RunLocal(rest, /*verify=*/false);
  if (command == "verify") return RunLocal(rest, /*verify=*/true);
  if (command == "gen") return Gen(rest);
  if (command == "preflight") return ferry::cli::RunPreflightCommand(rest);
  if (ferry::cli::IsRemoteCommand(command))
    return ferry::cli::RunRemoteCommand(command, rest, &g_stop);
  return UsageError("unknown command \"" + command + "\"");
}
