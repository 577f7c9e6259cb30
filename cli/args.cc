#include "cli/args.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace ferry::cli {

absl::StatusOr<Args> Args::Parse(const std::vector<std::string>& argv,
                                 const std::vector<FlagSpec>& specs) {
  Args args;
  for (size_t i = 0; i < argv.size(); ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") {
      args.positional_.insert(args.positional_.end(), argv.begin() + i + 1, argv.end());
      break;
    }
    if (!absl::ConsumePrefix(&arg, "--")) {
      args.positional_.push_back(argv[i]);
      continue;
    }
    std::string name(arg), value;
    bool inline_value = false;
    if (size_t eq = arg.find('='); eq != absl::string_view::npos) {
      name = std::string(arg.substr(0, eq));
      value = std::string(arg.substr(eq + 1));
      inline_value = true;
    }
    auto spec =
        std::find_if(specs.begin(), specs.end(), [&](const FlagSpec& s) { return s.name == name; });
    if (spec == specs.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown option --", name));
    }
    if (spec->value.empty()) {
      if (inline_value) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
      }
      value = "true";
    } else if (!inline_value) {
      if (i + 1 >= argv.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, " needs a value (", spec->value, ")"));
      }
      value = argv[++i];
    }
    args.values_[name] = value;
  }
  return args;
}

std::string Args::Get(absl::string_view name, absl::string_view fallback) const {
  auto it = values_.find(std::string(name));
  return it == values_.end() ? std::string(fallback) : it->second;
}

absl::StatusOr<int64_t> Args::GetInt(absl::string_view name, int64_t fallback, int64_t min,
                                     int64_t max) const {
  if (!Has(name)) return fallback;
  int64_t value = 0;
  if (!absl::SimpleAtoi(Get(name), &value) || value < min || value > max) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, " must be an integer from ", min,
                                                   " to ", max, ", not \"", Get(name), "\""));
  }
  return value;
}

absl::StatusOr<double> Args::GetDouble(absl::string_view name, double fallback, double min) const {
  if (!Has(name)) return fallback;
  double value = 0;
  if (!absl::SimpleAtod(Get(name), &value) || !(value >= min)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " must be a number >= ", min, ", not \"", Get(name), "\""));
  }
  return value;
}

absl::StatusOr<std::vector<int>> Args::GetIntList(absl::string_view name) const {
  std::vector<int> out;
  if (!Has(name)) return out;
  for (absl::string_view part : absl::StrSplit(Get(name), ',', absl::SkipWhitespace())) {
    int value = 0;
    if (!absl::SimpleAtoi(part, &value) || value < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--", name, " takes a comma-separated list of numbers >= 0, not \"", Get(name), "\""));
    }
    out.push_back(value);
  }
  return out;
}

std::string HelpText(absl::string_view usage, absl::string_view description,
                     const std::vector<FlagSpec>& specs) {
  std::string out = absl::StrCat("Usage: ", usage, "\n\n", description, "\n\nOptions:\n");
  size_t width = 0;
  for (const FlagSpec& s : specs) width = std::max(width, s.name.size() + s.value.size() + 1);
  for (const FlagSpec& s : specs) {
    std::string left = absl::StrCat("--", s.name, s.value.empty() ? "" : " ", s.value);
    left.resize(width + 3, ' ');
    absl::StrAppend(&out, "  ", left, s.help, "\n");
  }
  return out;
}

}  // namespace ferry::cli
