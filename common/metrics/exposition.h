#pragma once

// The Prometheus text exposition format, version 0.0.4: per family `# HELP` and `# TYPE`, then
// one line per sample; histograms as `_bucket{le=...}` (cumulative, ending with +Inf), `_sum`
// and `_count`.

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/metrics/registry.h"

namespace ferry::metrics {

// The Content-Type of TextExposition's output.
inline constexpr char kTextContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// Every family of `families`, in order. A family without points gets its HELP and TYPE lines
// only, so scrapers and dashboards see every name from the start.
std::string TextExposition(const std::vector<FamilySnapshot>& families);
std::string TextExposition(const Registry& registry);

// A sample value as the format writes it: integers without exponent, +Inf, -Inf, NaN, else the
// shortest decimal that reads back as the same double.
std::string FormatValue(double value);
// Label values escape `\`, `"` and newline; HELP text escapes `\` and newline.
std::string EscapeLabelValue(absl::string_view value);
std::string EscapeHelp(absl::string_view help);

}  // namespace ferry::metrics
