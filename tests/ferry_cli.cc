#include "tests/ferry_cli.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ferry::testing {

std::string FerryBinary(const std::string& name) {
  const char* dir = std::getenv("FERRY_BIN_DIR");
  return absl::StrCat(dir ? dir : "build/bin", "/", name);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string CliResult::json_line() const {
  std::string last;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    if (!line.empty() && line.front() == '{') last = std::string(line);
  }
  return last;
}

int64_t CliResult::json_int(const std::string& field) const {
  const std::string line = json_line();
  const std::string needle = absl::StrCat("\"", field, "\":");
  size_t pos = line.find(needle);
  if (pos == std::string::npos) return -1;
  pos += needle.size();
  size_t end = line.find_first_of(",}", pos);
  int64_t value = -1;
  if (!absl::SimpleAtoi(line.substr(pos, end - pos), &value)) return -1;
  return value;
}

absl::StatusOr<Subprocess> StartFerry(const std::vector<std::string>& args,
                                      const std::string& log_file,
                                      const std::vector<std::pair<std::string, std::string>>& env) {
  std::vector<std::string> argv = {FerryBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  SubprocessOptions options;
  options.log_file = log_file;
  options.env = env;
  return Subprocess::Start(argv, options);
}

CliResult RunFerry(const std::vector<std::string>& args,
                   const std::vector<std::pair<std::string, std::string>>& env,
                   absl::Duration timeout) {
  CliResult result;
  const ScopedTempDir dir("ferry-cli-");
  const std::string log = dir.path() + "/out.log";
  absl::StatusOr<Subprocess> process = StartFerry(args, log, env);
  if (!process.ok()) {
    result.output = std::string(process.status().message());
    return result;
  }
  absl::StatusOr<int> code = process->Wait(timeout);
  result.exit_code = code.ok() ? *code : -1000;
  result.output = ReadFile(log);
  return result;
}

}  // namespace ferry::testing
