#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "ferry/v1/ferry.pb.h"

namespace ferry::cli {

// Totals of a job at one moment.
struct ProgressSnapshot {
  ferry::v1::Counters counters;  // The job's, as the controller sums them.
  uint64_t estimated_keys = 0;
  int shards_total = 0;
  int shards_done = 0;
  absl::Duration elapsed;
  // The controller's rates over its recent window and its ETA (JobProgress), which the live line
  // shows; unset (a snapshot not from a job), the line falls back to averages since the start.
  std::optional<double> keys_per_second;
  std::optional<double> bytes_per_second;
  std::optional<double> eta_seconds;  // Only when the controller knows one.
  bool verify = false;                // A verify job: keys checked and differences.
  ferry::v1::JobState state = ferry::v1::JOB_STATE_UNSPECIFIED;
  // Live jobs (JobSpec.live): how the target follows the source. Once the snapshot is done
  // (LIVE, CUTOVER, CUTOVER_READY) the progress shows LiveLine instead of the bar.
  std::optional<ferry::v1::LiveProgress> live;
};

// "1,234,567".
std::string CountText(uint64_t n);
// Per second, short: "950", "12.3k", "1.50M".
std::string RateText(double per_second);

// Keys a verify job found differing (every kind), and keys that could not be compared.
uint64_t Differences(const ferry::v1::Counters& counters);

enum class ProgressMode { kNone, kBar, kLog };

// "auto" is a bar when stderr is a terminal, else log lines.
absl::Status ParseProgressMode(const std::string& text, ProgressMode* mode);

// Draws progress on stderr from its own thread until Stop(): a bar redrawn 4 times a second, or
// a log line every 5 seconds. `snapshot` is called from that thread.
class ProgressDisplay {
 public:
  ProgressDisplay(ProgressMode mode, std::function<ProgressSnapshot()> snapshot);
  ~ProgressDisplay() { Stop(); }
  void Start();
  void Stop();

 private:
  void Loop();
  void Draw(const ProgressSnapshot& s, bool final_line);

  const ProgressMode mode_;
  std::function<ProgressSnapshot()> snapshot_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  // Log mode: the last line logged and when (the drawing thread's).
  std::string last_logged_;
  absl::Time last_logged_at_ = absl::InfinitePast();
};

// One line: "copied 412,000/1,000,000 keys (41%), 310k keys/s, 35.2 MB/s, ETA 2s".
std::string ProgressLine(const ProgressSnapshot& s);

// The end of a job, printed by `ferry migrate` and `ferry watch`.
struct JobReport {
  std::string state;  // done, done-with-errors, failed, cancelled, dry-run
  absl::Status status;
  ProgressSnapshot totals;
  std::vector<std::pair<std::string, std::string>> failed_keys;  // key, reason (first few)
  std::vector<std::string> warnings;
  bool dry_run = false;
  // Verify jobs with differences: the counters of each source database (several only).
  std::vector<std::pair<int, ferry::v1::Counters>> per_db;
};

// Text for people, or one JSON object (--output json). Never contains a password or a value.
std::string FormatReport(const JobReport& report, bool json);

// JSON string literal for arbitrary bytes (non-UTF-8 bytes escaped as \u00XX).
std::string JsonString(const std::string& bytes);

}  // namespace ferry::cli
