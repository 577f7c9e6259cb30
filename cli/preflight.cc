#include "cli/preflight.h"

#include <cstdio>
#include <cstdlib>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "cli/client.h"
#include "cli/job_options.h"
#include "cli/progress.h"
#include "common/base/logging.h"
#include "server/copy_planner.h"

namespace ferry::cli {
namespace {

using server::Finding;
using server::Severity;

struct Counts {
  int errors = 0;
  int warnings = 0;
  int info = 0;
};

Counts CountOf(const std::vector<Finding>& findings) {
  Counts c;
  for (const Finding& f : findings) {
    if (f.severity == Severity::kError) ++c.errors;
    if (f.severity == Severity::kWarning) ++c.warnings;
    if (f.severity == Severity::kInfo) ++c.info;
  }
  return c;
}

std::string Plural(int n, const char* word) {
  return absl::StrCat(n, " ", word, n == 1 ? "" : "s");
}

std::string Verdict(int exit_code) {
  switch (exit_code) {
    case 0:
      return "the job would start";
    case 1:
      return "the job would start, with warnings (--strict)";
    case 2:
      return "the job would not start, or would stop part way";
    default:
      return "cannot connect, authenticate, or a permission the job needs is missing";
  }
}

int UsageError(const std::string& message) {
  std::fprintf(stderr, "error: %s\nRun with --help for usage.\n", message.c_str());
  return 2;
}

constexpr char kDescription[] =
    "Runs every check ferry migrate (and a controller, for ferry submit) runs before the first "
    "write,\nand goes on after an error where later checks can still run: reachability, TLS, "
    "AUTH and each\ncommand the job sends on each side, engine, version and the copy path, "
    "cluster topology and\nslots, databases, memory fit with the eviction policy, a target "
    "that is not empty, keyspace\nnotifications with --live, and an estimate of the copy's "
    "duration from a sample.\nNothing is written to either side: the target's write "
    "permissions are asked with ACL DRYRUN\nwhere the server answers it, else checked only "
    "with --probe-key NAME (else reported not checked).\nPasswords: FERRY_FROM_PASSWORD and "
    "FERRY_TO_PASSWORD when the URIs have none.\nExit codes: 0 no errors (warnings allowed), "
    "1 warnings with --strict, 2 errors (the job would\nnot start, or would stop part way; "
    "also a usage error), 3 cannot connect, authenticate or\nlacks a permission the job "
    "needs.";

}  // namespace

std::vector<FlagSpec> PreflightFlags() {
  const std::set<std::string> not_for_preflight = {"verify", "verify-only", "verify-mode",
                                                   "ttl-tolerance"};
  std::vector<FlagSpec> flags;
  for (FlagSpec& flag : JobFlags()) {
    if (not_for_preflight.count(flag.name) == 0) flags.push_back(std::move(flag));
  }
  flags.push_back({"probe-key", "NAME",
                   "the one key preflight may write, only where no key of that name exists: "
                   "the target's write probes name it where ACL DRYRUN cannot ask, and with "
                   "--live, where CONFIG is refused (ElastiCache), it is written on the source "
                   "with PX 2000 to see its keyspace events"});
  flags.push_back({"strict", "", "exit 1 when there are warnings (and no errors)"});
  flags.push_back(
      {"output", "FORMAT", "text (default) or json: the findings and a summary, on one line"});
  flags.push_back({"help", "", "show this help"});
  return flags;
}

int PreflightExitCode(const std::vector<Finding>& findings, bool strict) {
  int code = 0;
  for (const Finding& f : findings) {
    if (f.severity == Severity::kError) {
      code = std::max(code, ExitCodeFor(absl::Status(f.code, f.message)) == 3 ? 3 : 2);
    } else if (f.severity == Severity::kWarning && strict) {
      code = std::max(code, 1);
    }
  }
  return code;
}

std::string FormatPreflightText(const server::PreflightReport& report, const std::string& from,
                                const std::string& to, int exit_code) {
  std::string out = absl::StrCat("ferry preflight: ", from, " -> ", to, "\n");
  for (const Finding& f : report.findings) {
    const std::string severity(server::SeverityName(f.severity));
    absl::StrAppend(&out, severity, std::string(8 - std::min<size_t>(severity.size(), 7), ' '), "[",
                    f.check, "] ", f.message, "\n");
  }
  const Counts c = CountOf(report.findings);
  absl::StrAppend(&out, "preflight: ", Plural(c.errors, "error"), ", ",
                  Plural(c.warnings, "warning"), ": ", Verdict(exit_code), " (exit ", exit_code,
                  ")\n");
  return out;
}

std::string FormatPreflightJson(const server::PreflightReport& report, int exit_code) {
  std::string out = "{\"findings\":[";
  for (size_t i = 0; i < report.findings.size(); ++i) {
    const Finding& f = report.findings[i];
    absl::StrAppend(&out, i == 0 ? "" : ",",
                    "{\"severity\":", JsonString(std::string(server::SeverityName(f.severity))),
                    ",\"check\":", JsonString(f.check), ",\"message\":", JsonString(f.message),
                    "}");
  }
  const Counts c = CountOf(report.findings);
  absl::StrAppend(&out, "],\"summary\":{\"errors\":", c.errors, ",\"warnings\":", c.warnings,
                  ",\"info\":", c.info, ",\"source_keys\":", report.source_keys,
                  ",\"shards\":", report.shards, ",\"exit_code\":", exit_code, "}}");
  return out;
}

int RunPreflightCommand(const std::vector<std::string>& argv) {
  // The findings say what went wrong; internal log lines would only repeat them.
  if (std::getenv("FERRY_LOG_LEVEL") == nullptr) SetMinLogLevel(LogLevel::kError);
  const std::vector<FlagSpec> specs = PreflightFlags();
  absl::StatusOr<Args> args = Args::Parse(argv, specs);
  if (!args.ok()) return UsageError(std::string(args.status().message()));
  if (args->Has("help")) {
    std::fputs(
        HelpText("ferry preflight --from URI --to URI [options]", kDescription, specs).c_str(),
        stdout);
    return 0;
  }
  if (!args->positional().empty())
    return UsageError("unexpected argument " + args->positional()[0]);
  const std::string output = args->Get("output", "text");
  if (output != "text" && output != "json") {
    return UsageError("--output must be text or json, not \"" + output + "\"");
  }
  if (args->Has("probe-key") && args->Get("probe-key").empty()) {
    return UsageError("--probe-key needs a key name");
  }
  std::vector<std::string> option_warnings;
  absl::StatusOr<JobRequest> job = JobRequestFromArgs(*args, &option_warnings);
  if (!job.ok()) return UsageError(std::string(job.status().message()));
  absl::StatusOr<server::PlanRequest> request =
      server::PlanRequestFromSpec(JobSpecFromRequest(*job));
  if (!request.ok()) return UsageError(std::string(request.status().message()));
  request->no_writes = true;
  request->probe_key = args->Get("probe-key");
  server::PreflightReport report = server::RunPreflight(*request);
  std::vector<Finding> findings;
  for (std::string& w : option_warnings) {
    findings.push_back({Severity::kWarning, "options", std::move(w)});
  }
  findings.insert(findings.end(), report.findings.begin(), report.findings.end());
  report.findings = std::move(findings);
  const int code = PreflightExitCode(report.findings, args->Has("strict"));
  const std::string text = output == "json" ? FormatPreflightJson(report, code) + "\n"
                                            : FormatPreflightText(report, job->source.Redacted(),
                                                                  job->target.Redacted(), code);
  std::fputs(text.c_str(), stdout);
  return code;
}

}  // namespace ferry::cli
