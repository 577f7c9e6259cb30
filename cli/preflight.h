#pragma once

// `ferry preflight --from URI --to URI [job options]`: every check a job would run before its
// first write (server/preflight_report.h RunPreflight), reported as findings; nothing is
// written to either side but an explicit --probe-key.

#include <string>
#include <vector>

#include "cli/args.h"
#include "server/preflight_report.h"

namespace ferry::cli {

// The job's flags (JobFlags, without the verification ones) and --probe-key, --strict,
// --output, --help.
std::vector<FlagSpec> PreflightFlags();

// The exit code of a preflight: 3 when an error is one ferry migrate exits 3 for (cannot
// connect, authenticate, or lacks a permission: ExitCodeFor), else 2 when there is an error
// (the job would not start, or would stop part way), else 1 when there are warnings and
// `strict`, else 0.
int PreflightExitCode(const std::vector<server::Finding>& findings, bool strict);

// For people: a line naming the two sides, one line per finding in the order the checks ran
// (`error   [memory] ...`), then a summary that says what the exit code means.
std::string FormatPreflightText(const server::PreflightReport& report, const std::string& from,
                                const std::string& to, int exit_code);

// One JSON object on one line: {"findings":[{"severity","check","message"}...],
// "summary":{"errors","warnings","info","source_keys","shards","exit_code"}}.
std::string FormatPreflightJson(const server::PreflightReport& report, int exit_code);

// The whole command: parses `argv` (after `ferry preflight`), runs the checks, prints, and
// returns the exit code (2 for a usage error too, as ferry migrate does).
int RunPreflightCommand(const std::vector<std::string>& argv);

}  // namespace ferry::cli
