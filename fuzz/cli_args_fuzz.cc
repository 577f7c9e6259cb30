// CLI argument parsing (cli/args.h, cli/job_options.h): any argv is refused or parsed into
// flags that parse again from their canonical spelling, and a JobRequest is built or refused
// without quoting the passwords given in the environment.

#include <fuzzer/FuzzedDataProvider.h>
#include <stdlib.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/args.h"
#include "cli/job_options.h"
#include "fuzz/fuzz_support.h"

namespace ferry::fuzz {
namespace {

constexpr char kFromPassword[] = "fuzz-from-Secret-7731";
constexpr char kToPassword[] = "fuzz-to-Secret-8842";

std::vector<cli::FlagSpec> Specs(int which) {
  switch (which) {
    case 0:
      return cli::JobFlags();
    case 1:
      return cli::VerifyFlags();
    case 2:
      return cli::LocalFlags(false);
    default:
      return cli::LocalFlags(true);
  }
}

bool Secret(absl::string_view text) {
  return text.find(kFromPassword) != absl::string_view::npos ||
         text.find(kToPassword) != absl::string_view::npos;
}

// The parsed flags, spelled `--name=value` / `--switch`, then `--` and the positionals, parse
// back to the same flags.
void CheckCanonical(const cli::Args& args, const std::vector<cli::FlagSpec>& specs) {
  std::vector<std::string> argv;
  for (const cli::FlagSpec& spec : specs) {
    if (!args.Has(spec.name)) continue;
    argv.push_back(spec.value.empty() ? "--" + spec.name
                                      : absl::StrCat("--", spec.name, "=", args.Get(spec.name)));
  }
  argv.push_back("--");
  argv.insert(argv.end(), args.positional().begin(), args.positional().end());
  absl::StatusOr<cli::Args> again = cli::Args::Parse(argv, specs);
  Check(again.ok(), "canonical flags do not parse");
  for (const cli::FlagSpec& spec : specs) {
    Check(again->Has(spec.name) == args.Has(spec.name) &&
              again->Get(spec.name) == args.Get(spec.name),
          "canonical flags parse to other values");
  }
  Check(again->positional() == args.positional(), "canonical positionals differ");
}

void CheckValues(const cli::Args& args, const std::vector<cli::FlagSpec>& specs) {
  for (const cli::FlagSpec& spec : specs) {
    if (!args.Has(spec.name)) continue;
    absl::StatusOr<int64_t> number = args.GetInt(spec.name, 0, -5, 1000);
    Check(!number.ok() || (*number >= -5 && *number <= 1000), "GetInt out of range");
    absl::StatusOr<double> real = args.GetDouble(spec.name, 0, 0.5);
    Check(!real.ok() || *real >= 0.5, "GetDouble out of range");
    absl::StatusOr<std::vector<int>> list = args.GetIntList(spec.name);
    if (list.ok()) {
      for (int value : *list) Check(value >= 0, "GetIntList gave a negative number");
    }
    absl::StatusOr<uint64_t> bytes = cli::ParseBytes("--x", args.Get(spec.name));
    if (bytes.ok()) {
      Check(cli::ParseBytes("--x", std::to_string(*bytes)).value_or(~*bytes) == *bytes,
            "ParseBytes of its own result differs");
    }
    (void)cli::ParseCutoverVerify("--x", args.Get(spec.name));
  }
}

}  // namespace
}  // namespace ferry::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setenv("FERRY_FROM_PASSWORD", ferry::fuzz::kFromPassword, 1);
  setenv("FERRY_TO_PASSWORD", ferry::fuzz::kToPassword, 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using ferry::fuzz::Check;
  namespace cli = ferry::cli;
  FuzzedDataProvider input(data, size);
  const std::vector<cli::FlagSpec> specs = ferry::fuzz::Specs(input.ConsumeIntegralInRange(0, 3));
  // One argument per line.
  const std::vector<std::string> argv = absl::StrSplit(input.ConsumeRemainingBytesAsString(), '\n');
  for (const std::string& arg : argv) {
    if (ferry::fuzz::Secret(arg)) return 0;  // Given on the command line, not in the environment.
  }
  absl::StatusOr<cli::Args> args = cli::Args::Parse(argv, specs);
  if (!args.ok()) {
    Check(args.status().code() == absl::StatusCode::kInvalidArgument, "not INVALID_ARGUMENT");
    return 0;
  }
  ferry::fuzz::CheckCanonical(*args, specs);
  ferry::fuzz::CheckValues(*args, specs);
  std::vector<std::string> warnings;
  absl::StatusOr<cli::JobRequest> request = cli::JobRequestFromArgs(*args, &warnings);
  Check(!ferry::fuzz::Secret(request.status().message()), "an error quotes a password");
  for (const std::string& warning : warnings) {
    Check(!ferry::fuzz::Secret(warning), "a warning quotes a password");
  }
  if (request.ok()) {
    Check(!ferry::fuzz::Secret(request->source.Redacted()) &&
              !ferry::fuzz::Secret(request->target.Redacted()),
          "Redacted() shows a password");
    Check(request->batch_keys > 0 && request->rate_limit >= 0, "bad batch or rate");
  }
  Check(request.ok() || request.status().code() == absl::StatusCode::kInvalidArgument,
        "JobRequestFromArgs: not INVALID_ARGUMENT");
  Check(cli::ExitCodeFor(request.status()) == (request.ok() ? 0 : 2), "exit code of a usage error");
  (void)cli::HelpText("ferry x", "fuzz", specs);
  return 0;
}
