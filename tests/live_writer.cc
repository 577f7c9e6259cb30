#include "tests/live_writer.h"

#include <algorithm>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/redis/router.h"

namespace ferry::testing {

LiveWriter::LiveWriter(redis::Endpoint endpoint, int db, LiveWriterOptions options)
    : endpoint_(std::move(endpoint)), db_(db), options_(options) {}

LiveWriter::~LiveWriter() { (void)Stop(); }

void LiveWriter::Start() {
  thread_ = std::thread([this] { Run(); });
}

absl::Status LiveWriter::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  absl::MutexLock lock(&mu_);
  return status_;
}

void LiveWriter::Run() {
  // A router: a cluster's writes follow its failovers.
  absl::StatusOr<std::unique_ptr<redis::Router>> router =
      redis::Router::Open(endpoint_, db_, redis::ConnectOptions());
  if (!router.ok()) {
    absl::MutexLock lock(&mu_);
    status_ = router.status();
    return;
  }
  std::mt19937_64 rng(options_.seed);
  const auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  const absl::Time start = absl::Now();
  uint64_t sent = 0;
  std::vector<std::vector<std::string>> burst;
  while (!stop_) {
    burst.clear();
    for (int b = 0; b < options_.burst; ++b) {
      const std::string i = absl::StrCat(pick(options_.keys));
      const std::string value = absl::StrCat("v", rng() % 1000000);
      if (options_.strings_only) {
        burst.push_back({"SET", absl::StrCat("s:", i), value});
        continue;
      }
      switch (pick(16)) {
        case 0:
        case 1:
          burst.push_back({"SET", absl::StrCat("s:", i), value});
          break;
        case 2:
          burst.push_back({"INCR", absl::StrCat("c:", i)});
          break;
        case 3:
          burst.push_back({"HSET", absl::StrCat("h:", i), absl::StrCat("f", pick(20)), value});
          break;
        case 4:
          burst.push_back({"HDEL", absl::StrCat("h:", i), absl::StrCat("f", pick(20))});
          break;
        case 5:
          burst.push_back({"LPUSH", absl::StrCat("l:", i), value});
          burst.push_back({"LTRIM", absl::StrCat("l:", i), "0", "19"});
          break;
        case 6:
          burst.push_back({"ZADD", absl::StrCat("z:", i), absl::StrCat(pick(1000)), value});
          break;
        case 7:
          burst.push_back({"XADD", absl::StrCat("x:", i), "MAXLEN", "~", "20", "*", "f", value});
          break;
        case 8:
          burst.push_back({"DEL", absl::StrCat(pick(2) ? "s:" : "h:", i)});
          break;
        case 9:
          burst.push_back({"EXPIRE", absl::StrCat("s:", i), absl::StrCat(60 + pick(600))});
          break;
        case 10:
          burst.push_back({"PERSIST", absl::StrCat("s:", i)});
          break;
        case 11:
          burst.push_back(
              {"RENAME", absl::StrCat("s:", i), absl::StrCat("s:", pick(options_.keys))});
          break;
        case 12:
          // Keys that expire on their own while the job runs.
          burst.push_back(
              {"SET", absl::StrCat("e:", i), value, "PX", absl::StrCat(50 + pick(950))});
          break;
        case 13:
          burst.push_back({"SADD", absl::StrCat("t:", i), absl::StrCat("m", pick(50))});
          break;
        case 14:
          burst.push_back({"PEXPIRE", absl::StrCat("h:", i), absl::StrCat(30000 + pick(300000))});
          break;
        default:
          burst.push_back({"APPEND", absl::StrCat("s:", i), "+"});
      }
    }
    for (const auto& command : burst) {
      std::vector<absl::string_view> argv(command.begin(), command.end());
      (*router)->Add(argv);
    }
    // Error replies (WRONGTYPE, RENAME of a missing key, CROSSSLOT) are part of the mix.
    absl::Status status = (*router)->Execute().status();
    if (!status.ok()) {
      absl::MutexLock lock(&mu_);
      status_ = status;
      return;
    }
    sent += burst.size();
    ops_ = sent;
    // Paced: the next burst leaves when the rate says so.
    const absl::Time due =
        start + absl::Seconds(static_cast<double>(sent) / options_.ops_per_second);
    const absl::Duration wait = due - absl::Now();
    if (wait > absl::ZeroDuration()) absl::SleepFor(std::min(wait, absl::Milliseconds(200)));
  }
}

}  // namespace ferry::testing
