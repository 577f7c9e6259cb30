#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ferry::cli {

// One flag a command accepts.
struct FlagSpec {
  std::string name;   // Without dashes: "from".
  std::string value;  // Placeholder shown in help ("URI"); empty for a boolean switch.
  std::string help;
};

// The parsed command line of one subcommand: `--name value`, `--name=value`, `--switch`, and
// positional arguments. Unknown flags and missing values are errors (INVALID_ARGUMENT).
class Args {
 public:
  static absl::StatusOr<Args> Parse(const std::vector<std::string>& argv,
                                    const std::vector<FlagSpec>& specs);

  bool Has(absl::string_view name) const { return values_.count(std::string(name)) > 0; }
  std::string Get(absl::string_view name, absl::string_view fallback = "") const;
  absl::StatusOr<int64_t> GetInt(absl::string_view name, int64_t fallback, int64_t min,
                                 int64_t max) const;
  absl::StatusOr<double> GetDouble(absl::string_view name, double fallback, double min) const;
  // A comma-separated list of integers ("0,3").
  absl::StatusOr<std::vector<int>> GetIntList(absl::string_view name) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

// "Usage: <usage>\n\n<description>\n\nOptions:\n  --name VALUE  help..."
std::string HelpText(absl::string_view usage, absl::string_view description,
                     const std::vector<FlagSpec>& specs);

}  // namespace ferry::cli
