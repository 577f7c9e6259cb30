#include "cli/remote.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/client.h"
#include "cli/cutover.h"
#include "cli/live.h"
#include "cli/watch.h"
#include "google/protobuf/util/json_util.h"
#include "proto/wire/job_defaults.h"

namespace ferry::cli {
namespace {

struct Command {
  std::string usage;
  std::string description;
  std::vector<FlagSpec> flags;  // Besides ClientFlags().
  int positional;               // Number of positional arguments (the job id).
};

const std::map<std::string, Command>& Commands() {
  static const auto* commands = new std::map<std::string, Command>{
      {"submit",
       {"ferry submit --from URI --to URI [options]",
        "Submits a job to the controller and prints its id alone on stdout.", JobFlags(), 0}},
      {"status",
       {"ferry status JOB [--failed | --differences] [--output json]",
        "Shows a job.",
        {{"failed", "", "also list the keys that failed (up to 1000)"},
         {"differences", "",
          "verify jobs: also list every key that differs, with its kind (all pages)"},
         {"output", "FORMAT", "text (default) or json"}},
        1}},
      {"watch",
       {"ferry watch JOB [--progress MODE] [--output json]",
        "Shows a job's progress until it ends, or for a live job until its cutover is ready (the "
        "live line\nreplaces the bar once the snapshot is done); exits like ferry migrate (0 "
        "every key copied or\nthe cutover ready, 1 failed keys, 3 access errors).",
        {{"progress", "MODE", "auto, bar, log or none"},
         {"output", "FORMAT", "text (default) or json: the final summary"}},
        1}},
      {"cutover",
       {"ferry cutover JOB [--verify-mode MODE] [--timeout SECONDS] [--output json]",
        "Cuts a live job over once its writers are stopped: every watcher publishes a marker "
        "and waits for\nit to come back through its subscription, the dirty keys are drained, "
        "then the verification\nruns and its report is printed.\nExit codes: 0 converged (and "
        "verified equal), 1 differences found, 2 usage error or the job is\nnot live, 3 cannot "
        "reach the controller, 4 the cutover could not converge (writers still\nrunning, or "
        "the timeout): the job is live again, 130 interrupted (the cutover goes on).",
        {{"verify-mode", "MODE",
          "after converging, verify quick (default: type, TTL, length), full (values) or none"},
         {"timeout", "SECONDS",
          absl::StrCat("how long the cutover may take to converge before it gives up and the "
                       "job is live again (default ",
                       wire::kDefaultCutoverTimeoutSeconds,
                       "); each call's deadline is the usual 15 s")},
         {"progress", "MODE", "auto, bar, log or none"},
         {"output", "FORMAT",
          "text (default) or json: one object, the verification's report in it"}},
        1}},
      {"list",
       {"ferry list [--output json]",
        "Lists the jobs.",
        {{"output", "FORMAT", "text or json"}},
        0}},
      {"cancel",
       {"ferry cancel JOB", "Cancels a job; its shards stop at a batch boundary.", {}, 1}},
      {"pause", {"ferry pause JOB", "Pauses a job; resume continues from its checkpoints.", {}, 1}},
      {"resume", {"ferry resume JOB", "Resumes a paused job.", {}, 1}},
      {"agents",
       {"ferry agents [--output json]",
        "Lists the connected agents.",
        {{"output", "FORMAT", "text or json"}},
        0}},
  };
  return *commands;
}

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "error: %s\n", std::string(status.message()).c_str());
  return ExitCodeFor(status) == 0 ? 1 : ExitCodeFor(status);
}

void PrintJob(const ferry::v1::Job& job) {
  std::printf("job %s: %s%s\n", job.id().c_str(),
              job.spec().kind() == ferry::v1::JOB_KIND_VERIFY ? "verify, " : "",
              StateName(job).c_str());
  std::printf("  %s -> %s\n", job.spec().source().uri().c_str(), job.spec().target().uri().c_str());
  const ProgressSnapshot snapshot = SnapshotOfJob(job, absl::Now());
  std::printf("  %s\n",
              (ShowsLiveLine(snapshot) ? SnapshotLine(snapshot) : ProgressLine(snapshot)).c_str());
  if (snapshot.live.has_value()) std::fputs(LiveSection(job.state(), job.live()).c_str(), stdout);
  if (!job.error().empty()) std::printf("  error: %s\n", job.error().c_str());
  if (!job.planning_retry().empty()) std::printf("  waiting: %s\n", job.planning_retry().c_str());
  for (const std::string& w : job.warnings()) std::printf("  warning: %s\n", w.c_str());
}

int Status(ControllerClient& client, const std::string& id, const Args& args) {
  absl::StatusOr<ferry::v1::Job> job = client.Get(id);
  if (!job.ok()) return Fail(job.status());
  // A verify job's differing keys are its failed keys, each with its kind as the reason.
  const bool differences = args.Has("differences");
  if (differences && job->spec().kind() != ferry::v1::JOB_KIND_VERIFY) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("job ", id, " is a copy, not a verification: use --failed")));
  }
  absl::StatusOr<ferry::v1::ListFailedKeysResponse> failed;
  if (args.Has("failed") || differences) {
    failed = differences ? client.AllFailedKeys(id) : client.FailedKeys(id, 1000);
    if (!failed.ok()) return Fail(failed.status());
  }
  const char* list_name = differences ? "differences" : "failed_keys";
  if (args.Get("output") == "json") {
    std::string out = ToJson(*job);
    if (failed.ok() && (args.Has("failed") || differences)) {
      out = absl::StrCat("{\"job\":", out, ",\"", list_name, "\":", ToJson(*failed), "}");
    }
    std::printf("%s\n", out.c_str());
    return 0;
  }
  PrintJob(*job);
  if (args.Has("failed") || differences) {
    std::printf("  %s: %llu\n", differences ? "differing keys" : "failed keys",
                static_cast<unsigned long long>(failed->total()));
    for (const auto& key : failed->keys()) {
      std::printf("    %s: %s\n", JsonString(key.key()).c_str(), key.reason().c_str());
    }
  }
  return 0;
}

int List(ControllerClient& client, const Args& args) {
  absl::StatusOr<std::vector<ferry::v1::Job>> jobs = client.List();
  if (!jobs.ok()) return Fail(jobs.status());
  if (args.Get("output") == "json") {
    ferry::v1::ListJobsResponse response;
    for (const auto& job : *jobs) *response.add_jobs() = job;
    std::printf("%s\n", ToJson(response).c_str());
    return 0;
  }
  std::printf("%-24s %-17s %-24s %s\n", "JOB", "STATE", "COPIED/ESTIMATED", "SOURCE -> TARGET");
  for (const auto& job : *jobs) {
    std::printf(
        "%-24s %-17s %-24s %s -> %s\n", job.id().c_str(), StateName(job.state()).c_str(),
        absl::StrCat(job.progress().counters().copied(), "/", job.progress().estimated_keys())
            .c_str(),
        job.spec().source().uri().c_str(), job.spec().target().uri().c_str());
  }
  return 0;
}

int Agents(ControllerClient& client, const Args& args) {
  absl::StatusOr<std::vector<ferry::v1::AgentInfo>> agents = client.Agents();
  if (!agents.ok()) return Fail(agents.status());
  if (args.Get("output") == "json") {
    ferry::v1::ListAgentsResponse response;
    for (const auto& a : *agents) *response.add_agents() = a;
    std::printf("%s\n", ToJson(response).c_str());
    return 0;
  }
  std::printf("%-20s %-32s %-8s %s\n", "AGENT", "NAME", "RUNNING", "PEER");
  for (const auto& a : *agents) {
    std::printf("%-20s %-32s %-8s %s\n", a.agent_id().c_str(), a.name().c_str(),
                absl::StrCat(a.running(), "/", a.slots()).c_str(), a.peer().c_str());
  }
  return 0;
}

}  // namespace

bool IsRemoteCommand(const std::string& command) { return Commands().count(command) > 0; }

int RunRemoteCommand(const std::string& name, const std::vector<std::string>& argv,
                     std::atomic<bool>* stop) {
  const Command& command = Commands().at(name);
  std::vector<FlagSpec> specs = command.flags;
  // A command's own flag of a client flag's name wins (ferry cutover --timeout).
  for (FlagSpec& f : ClientFlags()) {
    const bool own = std::any_of(specs.begin(), specs.end(),
                                 [&](const FlagSpec& s) { return s.name == f.name; });
    if (!own) specs.push_back(std::move(f));
  }
  specs.push_back({"help", "", "show this help"});
  absl::StatusOr<Args> args = Args::Parse(argv, specs);
  if (!args.ok()) return Fail(args.status());
  if (args->Has("help")) {
    std::fputs(HelpText(command.usage, command.description, specs).c_str(), stdout);
    return 0;
  }
  if (static_cast<int>(args->positional().size()) != command.positional) {
    return Fail(absl::InvalidArgumentError(
        command.positional ? absl::StrCat("give the job id: ", command.usage)
                           : absl::StrCat("unexpected argument ", args->positional()[0])));
  }
  const std::string output = args->Get("output", "text");
  if (output != "text" && output != "json") {
    return Fail(absl::InvalidArgumentError("--output must be text or json"));
  }
  CutoverOptions cutover;
  if (name == "cutover") {
    absl::StatusOr<CutoverVerify> verify =
        ParseCutoverVerify("--verify-mode", args->Get("verify-mode", "quick"));
    if (!verify.ok()) return Fail(verify.status());
    cutover.verify = *verify;
    absl::StatusOr<int64_t> timeout =
        args->GetInt("timeout", wire::kDefaultCutoverTimeoutSeconds, 1, 86400);
    if (!timeout.ok()) return Fail(timeout.status());
    cutover.timeout_seconds = static_cast<uint32_t>(*timeout);
    cutover.json = output == "json";
    if (absl::Status s = ParseProgressMode(args->Get("progress", "auto"), &cutover.progress);
        !s.ok()) {
      return Fail(s);
    }
  }
  absl::StatusOr<ClientOptions> options = ClientOptionsFromArgs(*args);
  if (!options.ok()) return Fail(options.status());
  if (name == "cutover") options->call_timeout = ClientOptions().call_timeout;
  absl::StatusOr<ControllerClient> client = ControllerClient::Connect(*options);
  if (!client.ok()) return Fail(client.status());
  const std::string id = command.positional ? args->positional()[0] : "";

  if (name == "submit") {
    std::vector<std::string> warnings;
    absl::StatusOr<JobRequest> request = JobRequestFromArgs(*args, &warnings);
    if (!request.ok()) return Fail(request.status());
    if (args->Has("verify")) {
      return Fail(absl::InvalidArgumentError(
          "ferry submit runs one job: submit the copy, and once it is done the verification "
          "with --verify-only"));
    }
    for (const std::string& w : warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
    absl::StatusOr<std::string> job_id = client->Submit(JobSpecFromRequest(*request));
    if (!job_id.ok()) return Fail(job_id.status());
    std::printf("%s\n", job_id->c_str());
    return 0;
  }
  if (name == "status") return Status(*client, id, *args);
  if (name == "cutover") return RunCutover(*client, id, cutover, stop);
  if (name == "list") return List(*client, *args);
  if (name == "agents") return Agents(*client, *args);
  if (name == "watch") {
    WatchOptions watch;
    if (absl::Status s = ParseProgressMode(args->Get("progress", "auto"), &watch.progress);
        !s.ok()) {
      return Fail(s);
    }
    watch.json = output == "json";
    return WatchJob(*client, id, watch, stop);
  }
  absl::StatusOr<ferry::v1::Job> job = name == "cancel"  ? client->Cancel(id)
                                       : name == "pause" ? client->Pause(id)
                                                         : client->Resume(id);
  if (!job.ok()) return Fail(job.status());
  std::printf("job %s: %s\n", job->id().c_str(), StateName(job->state()).c_str());
  return 0;
}

}  // namespace ferry::cli
