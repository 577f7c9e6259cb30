#include "cli/progress.h"

#include <unistd.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/live.h"

namespace ferry::cli {

std::string CountText(uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string RateText(double per_second) {
  if (per_second >= 1e6) return absl::StrFormat("%.2fM", per_second / 1e6);
  if (per_second >= 1e3) return absl::StrFormat("%.1fk", per_second / 1e3);
  return absl::StrFormat("%.0f", per_second);
}

namespace {

double Seconds(const ProgressSnapshot& s) {
  return std::max(absl::ToDoubleSeconds(s.elapsed), 1e-3);
}

// Keys that reached an end: copies, every counter but `scanned` and `bytes`; verifications,
// every key checked.
uint64_t KeysDone(const ProgressSnapshot& s) {
  const ferry::v1::Counters& c = s.counters;
  if (s.verify) return c.scanned();
  return c.copied() + c.skipped() + c.vanished() + c.expired() + c.failed();
}

// "3 missing, 1 value" for the kinds of difference found; empty when none.
std::string DifferenceKinds(const ferry::v1::Counters& c) {
  std::vector<std::string> kinds;
  for (const auto& [count, name] : {std::pair<uint64_t, const char*>{c.missing(), "missing"},
                                    {c.extra(), "extra"},
                                    {c.type_differs(), "type"},
                                    {c.value_differs(), "value"},
                                    {c.ttl_differs(), "TTL"}}) {
    if (count > 0) kinds.push_back(absl::StrCat(CountText(count), " ", name));
  }
  return absl::StrJoin(kinds, ", ");
}

// `,"scanned":1,"copied":1,...`: every field of Counters under its proto name, in field order,
// so that a counter added to the proto reaches the JSON summary without an edit here.
std::string CountersJson(const ferry::v1::Counters& c) {
  const google::protobuf::Descriptor* descriptor = ferry::v1::Counters::descriptor();
  const google::protobuf::Reflection* reflection = ferry::v1::Counters::GetReflection();
  std::string out;
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = descriptor->field(i);
    absl::StrAppend(&out, ",\"", field->name(), "\":", reflection->GetUInt64(c, field));
  }
  return out;
}

}  // namespace

uint64_t Differences(const ferry::v1::Counters& c) {
  return c.missing() + c.extra() + c.type_differs() + c.value_differs() + c.ttl_differs();
}

absl::Status ParseProgressMode(const std::string& text, ProgressMode* mode) {
  if (text == "auto") {
    *mode = isatty(STDERR_FILENO) ? ProgressMode::kBar : ProgressMode::kLog;
  } else if (text == "bar") {
    *mode = ProgressMode::kBar;
  } else if (text == "log") {
    *mode = ProgressMode::kLog;
  } else if (text == "none") {
    *mode = ProgressMode::kNone;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--progress must be auto, bar, log or none, not \"", text, "\""));
  }
  return absl::OkStatus();
}

std::string ProgressLine(const ProgressSnapshot& s) {
  if (ShowsLiveLine(s)) return LiveLine(s.state, *s.live);
  const ferry::v1::Counters& c = s.counters;
  const double secs = Seconds(s);
  const uint64_t done = KeysDone(s);
  const double rate = s.keys_per_second.value_or(static_cast<double>(c.scanned()) / secs);
  const double bytes_rate = s.bytes_per_second.value_or(static_cast<double>(c.bytes()) / secs);
  std::string line = s.verify ? absl::StrCat("checked ", CountText(c.scanned()), "/",
                                             CountText(s.estimated_keys), " keys")
                              : absl::StrCat("copied ", CountText(c.copied()), "/",
                                             CountText(s.estimated_keys), " keys");
  if (s.estimated_keys > 0) {
    absl::StrAppend(&line,
                    absl::StrFormat(" (%.0f%%)", std::min(100.0, 100.0 * done / s.estimated_keys)));
  }
  absl::StrAppend(&line, ", ", RateText(rate), " keys/s");
  if (!s.verify) absl::StrAppend(&line, absl::StrFormat(", %.1f MB/s", bytes_rate / 1e6));
  if (s.verify) absl::StrAppend(&line, ", ", CountText(Differences(c)), " differences");
  if (s.shards_total > 0) absl::StrAppend(&line, ", shards ", s.shards_done, "/", s.shards_total);
  if (c.failed() > 0) absl::StrAppend(&line, ", ", CountText(c.failed()), " failed");
  if (s.eta_seconds.has_value()) {
    absl::StrAppend(&line, absl::StrFormat(", ETA %.0fs", *s.eta_seconds));
  } else if (!s.keys_per_second.has_value() && rate > 0 && s.estimated_keys > c.scanned()) {
    absl::StrAppend(&line, absl::StrFormat(", ETA %.0fs", (s.estimated_keys - c.scanned()) / rate));
  }
  return line;
}

ProgressDisplay::ProgressDisplay(ProgressMode mode, std::function<ProgressSnapshot()> snapshot)
    : mode_(mode), snapshot_(std::move(snapshot)) {}

void ProgressDisplay::Start() {
  if (mode_ == ProgressMode::kNone) return;
  thread_ = std::thread([this] { Loop(); });
}

void ProgressDisplay::Stop() {
  if (!thread_.joinable()) return;
  stop_ = true;
  thread_.join();
  Draw(snapshot_(), /*final_line=*/true);
}

void ProgressDisplay::Loop() {
  const absl::Duration period =
      mode_ == ProgressMode::kBar ? absl::Milliseconds(250) : absl::Seconds(5);
  absl::Time next = absl::Now() + period;
  while (!stop_) {
    absl::SleepFor(absl::Milliseconds(50));
    if (absl::Now() < next) continue;
    next += period;
    Draw(snapshot_(), /*final_line=*/false);
  }
}

void ProgressDisplay::Draw(const ProgressSnapshot& s, bool final_line) {
  if (mode_ == ProgressMode::kLog) {
    if (final_line) return;
    const std::string line = ProgressLine(s);
    // A live job can follow for days: an unchanged live line is logged once a minute.
    const absl::Time now = absl::Now();
    if (ShowsLiveLine(s) && line == last_logged_ && now < last_logged_at_ + absl::Minutes(1)) {
      return;
    }
    last_logged_ = line;
    last_logged_at_ = now;
    std::fprintf(stderr, "progress: %s\n", line.c_str());
    return;
  }
  if (ShowsLiveLine(s)) {  // The snapshot is done: no bar, the live line alone.
    std::fprintf(stderr, "\r%s\033[K%s", ProgressLine(s).c_str(), final_line ? "\n" : "");
    std::fflush(stderr);
    return;
  }
  constexpr int kWidth = 30;
  const uint64_t done = KeysDone(s);
  double fraction = s.estimated_keys > 0 ? static_cast<double>(done) / s.estimated_keys : 0;
  if (final_line) fraction = 1;
  const int filled = static_cast<int>(std::min(1.0, fraction) * kWidth);
  std::string bar = std::string(filled, '#') + std::string(kWidth - filled, '.');
  std::fprintf(stderr, "\r[%s] %s\033[K%s", bar.c_str(), ProgressLine(s).c_str(),
               final_line ? "\n" : "");
  std::fflush(stderr);
}

std::string JsonString(const std::string& bytes) {
  std::string out = "\"";
  for (unsigned char c : bytes) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          absl::StrAppend(&out, absl::StrFormat("\\u%04x", c));
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

namespace {

// The end of a verify job, for people: what was checked, what differs, each differing key by
// name with its kind (never its value).
std::string FormatVerifyReport(const JobReport& r) {
  const ferry::v1::Counters& c = r.totals.counters;
  const double secs = Seconds(r.totals);
  const uint64_t differences = Differences(c);
  std::string out = absl::StrCat("verify: ", r.state, " in ", absl::StrFormat("%.1fs", secs), ": ",
                                 CountText(c.scanned()), " keys checked (source and target), ",
                                 CountText(c.verified()),
                                 " source keys equal on the "
                                 "target, ",
                                 CountText(differences), " differences");
  if (differences > 0) absl::StrAppend(&out, " (", DifferenceKinds(c), ")");
  absl::StrAppend(&out, ", ", CountText(c.vanished() + c.expired()),
                  " gone or expired during the check, ", CountText(c.failed()),
                  " could not be compared; ", RateText(c.scanned() / secs), " keys/s\n");
  for (const auto& [db, counters] : r.per_db) {
    absl::StrAppend(&out, "  db ", db, ": ", CountText(counters.verified()), " equal, ",
                    CountText(Differences(counters)), " differences");
    if (Differences(counters) > 0) absl::StrAppend(&out, " (", DifferenceKinds(counters), ")");
    absl::StrAppend(&out, "\n");
  }
  for (const auto& [key, reason] : r.failed_keys) {
    absl::StrAppend(&out, "  ", JsonString(key), ": ", reason, "\n");
  }
  if (differences + c.failed() > r.failed_keys.size()) {
    absl::StrAppend(&out, "  ... and ", CountText(differences + c.failed() - r.failed_keys.size()),
                    " more (ferry status JOB --differences lists them all)\n");
  }
  for (const std::string& warning : r.warnings) absl::StrAppend(&out, "warning: ", warning, "\n");
  if (!r.status.ok()) absl::StrAppend(&out, "error: ", r.status.message(), "\n");
  return out;
}

}  // namespace

std::string FormatReport(const JobReport& r, bool json) {
  const ProgressSnapshot& t = r.totals;
  const ferry::v1::Counters& c = t.counters;
  const double secs = Seconds(t);
  if (json) {
    std::string out = absl::StrCat(
        "{\"kind\":", t.verify ? "\"verify\"" : "\"copy\"", ",\"state\":", JsonString(r.state),
        ",\"dry_run\":", r.dry_run ? "true" : "false", CountersJson(c),
        ",\"estimated_keys\":", t.estimated_keys, ",\"shards_total\":", t.shards_total,
        ",\"shards_done\":", t.shards_done,
        absl::StrFormat(",\"seconds\":%.3f,\"keys_per_second\":%.0f", secs, c.scanned() / secs));
    absl::StrAppend(
        &out, ",\"error\":", r.status.ok() ? "null" : JsonString(std::string(r.status.message())),
        ",\"warnings\":[");
    for (size_t i = 0; i < r.warnings.size(); ++i) {
      absl::StrAppend(&out, i ? "," : "", JsonString(r.warnings[i]));
    }
    absl::StrAppend(&out, "]");
    if (t.live.has_value()) absl::StrAppend(&out, ",\"live\":", LiveJson(*t.live));
    absl::StrAppend(&out, ",\"per_db\":[");
    for (size_t i = 0; i < r.per_db.size(); ++i) {
      absl::StrAppend(&out, i ? "," : "", "{\"db\":", r.per_db[i].first,
                      CountersJson(r.per_db[i].second), "}");
    }
    absl::StrAppend(&out, "],\"failed_keys\":[");
    for (size_t i = 0; i < r.failed_keys.size(); ++i) {
      absl::StrAppend(&out, i ? "," : "", "{\"key\":", JsonString(r.failed_keys[i].first),
                      ",\"reason\":", JsonString(r.failed_keys[i].second), "}");
    }
    return out + "]}\n";
  }
  if (t.verify) return FormatVerifyReport(r);
  std::string out = absl::StrCat(
      r.dry_run ? "dry run (nothing written): " : "", r.state, " in ",
      absl::StrFormat("%.1fs", secs), ": ", CountText(c.copied()), " keys copied",
      // SCAN returns some keys twice while a table is resized: their second writes.
      c.resent() > 0 ? absl::StrCat(" (and ", CountText(c.resent()), " writes re-sent)") : "",
      r.dry_run ? absl::StrCat(" (", CountText(c.scanned()), " would be)") : "", ", ",
      CountText(c.skipped()), " skipped, ", CountText(c.vanished()), " vanished, ",
      CountText(c.expired()), " expired, ", CountText(c.failed()), " failed; ",
      absl::StrFormat("%.1f MB", c.bytes() / 1e6),
      // A live job's time includes its following: no rate.
      t.live.has_value() ? "" : absl::StrCat(", ", RateText(c.scanned() / secs), " keys/s"), "\n");
  for (const auto& [key, reason] : r.failed_keys) {
    absl::StrAppend(&out, "  failed: ", JsonString(key), ": ", reason, "\n");
  }
  if (c.failed() > r.failed_keys.size()) {
    absl::StrAppend(&out, "  ... and ", CountText(c.failed() - r.failed_keys.size()), " more\n");
  }
  if (t.live.has_value()) absl::StrAppend(&out, LiveReport(*t.live));
  for (const std::string& warning : r.warnings) absl::StrAppend(&out, "warning: ", warning, "\n");
  if (!r.status.ok()) absl::StrAppend(&out, "error: ", r.status.message(), "\n");
  return out;
}

}  // namespace ferry::cli
