#pragma once

// Runs the real `ferry` binary (and, later, ferry-controller / ferry-agent) for integration
// tests. Test support only.

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/testing/process.h"

namespace ferry::testing {

// Path of a binary of ours: $FERRY_BIN_DIR/<name> (set by ctest).
std::string FerryBinary(const std::string& name = "ferry");

struct CliResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together.
  // The last line of output that starts with '{' (the --output json summary).
  std::string json_line() const;
  // The integer value of a top-level field of json_line(); -1 when absent.
  int64_t json_int(const std::string& field) const;
};

// Runs `ferry args...` to completion (at most `timeout`).
CliResult RunFerry(const std::vector<std::string>& args,
                   const std::vector<std::pair<std::string, std::string>>& env = {},
                   absl::Duration timeout = absl::Minutes(5));

// Starts `ferry args...` without waiting; output goes to `log_file`.
absl::StatusOr<Subprocess> StartFerry(
    const std::vector<std::string>& args, const std::string& log_file,
    const std::vector<std::pair<std::string, std::string>>& env = {});

std::string ReadFile(const std::string& path);

}  // namespace ferry::testing
