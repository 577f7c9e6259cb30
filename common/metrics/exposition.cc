#include "common/metrics/exposition.h"

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace ferry::metrics {
namespace {

const char* TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// `{a="x",b="y"}`, with `le` last when given; empty without labels.
std::string LabelSet(const std::vector<std::string>& names, const std::vector<std::string>& values,
                     const std::string* le = nullptr) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) {
    absl::StrAppend(&out, out.empty() ? "{" : ",", names[i], "=\"", EscapeLabelValue(values[i]),
                    "\"");
  }
  if (le != nullptr) absl::StrAppend(&out, out.empty() ? "{" : ",", "le=\"", *le, "\"");
  if (!out.empty()) out += "}";
  return out;
}

void AppendHistogram(const FamilySnapshot& family, const Point& point, std::string& out) {
  for (size_t i = 0; i < family.bounds.size(); ++i) {
    const std::string le = FormatValue(family.bounds[i]);
    const uint64_t count = i < point.bucket_counts.size() ? point.bucket_counts[i] : 0;
    absl::StrAppend(&out, family.name, "_bucket",
                    LabelSet(family.label_names, point.label_values, &le), " ", count, "\n");
  }
  const std::string inf = "+Inf";
  const std::string labels = LabelSet(family.label_names, point.label_values);
  absl::StrAppend(&out, family.name, "_bucket",
                  LabelSet(family.label_names, point.label_values, &inf), " ", point.count, "\n");
  absl::StrAppend(&out, family.name, "_sum", labels, " ", FormatValue(point.sum), "\n");
  absl::StrAppend(&out, family.name, "_count", labels, " ", point.count, "\n");
}

}  // namespace

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 9007199254740992.0) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  char buffer[32];
  for (int precision = 15; precision <= 17; ++precision) {
    std::snprintf(buffer, sizeof(buffer), "%.*g", precision, value);
    if (std::strtod(buffer, nullptr) == value) break;
  }
  return buffer;
}

std::string EscapeLabelValue(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string EscapeHelp(absl::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string TextExposition(const std::vector<FamilySnapshot>& families) {
  std::string out;
  for (const FamilySnapshot& family : families) {
    absl::StrAppend(&out, "# HELP ", family.name, " ", EscapeHelp(family.help), "\n");
    absl::StrAppend(&out, "# TYPE ", family.name, " ", TypeName(family.type), "\n");
    for (const Point& point : family.points) {
      if (family.type == MetricType::kHistogram) {
        AppendHistogram(family, point, out);
      } else {
        absl::StrAppend(&out, family.name, LabelSet(family.label_names, point.label_values), " ",
                        FormatValue(point.value), "\n");
      }
    }
  }
  return out;
}

std::string TextExposition(const Registry& registry) { return TextExposition(registry.Collect()); }

}  // namespace ferry::metrics
