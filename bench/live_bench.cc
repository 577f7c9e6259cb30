// ferry-live-bench: load and measurement for the live sync benchmark (bench/live.sh).
//
//   follow: writes small strings to the source at --rate ops/s for --seconds, and measures how
//           far the target trails: every 10 ms a probe key on the source gets the time of day
//           (us); a reader polls the target for it every 2 ms, and each probe value it sees
//           first gives one lag sample (now - value). Prints one JSON line: the rate asked and
//           achieved, and the lag's p50 / p99 / max in ms over the samples.
//   dirty:  writes --keys distinct keys with MSET (1000 per command) as fast as the source
//           takes them, then prints the seconds it took: a dirty set of that many keys.
//
// Source and target are standalone servers (redis://host:port). Benchmark support only.

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/redis/connection.h"
#include "common/redis/endpoint.h"

namespace {

using ferry::redis::Connection;
using ferry::redis::Endpoint;

int Usage() {
  std::fprintf(stderr,
               "usage: ferry-live-bench follow --source URI --target URI --rate OPS --seconds S "
               "[--keys K]\n"
               "       ferry-live-bench dirty --source URI --keys N\n");
  return 2;
}

Connection Open(const std::string& uri) {
  absl::StatusOr<Endpoint> endpoint = ferry::redis::ParseEndpointUri(uri, "");
  if (!endpoint.ok()) {
    std::fprintf(stderr, "%s: %s\n", uri.c_str(), std::string(endpoint.status().message()).c_str());
    std::exit(2);
  }
  absl::StatusOr<Connection> conn = Connection::Open(*endpoint, {});
  if (!conn.ok()) {
    std::fprintf(stderr, "%s: %s\n", uri.c_str(), std::string(conn.status().message()).c_str());
    std::exit(1);
  }
  return *std::move(conn);
}

int64_t NowMicros() { return absl::ToUnixMicros(absl::Now()); }

void Check(const absl::Status& status, const char* what) {
  if (status.ok()) return;
  std::fprintf(stderr, "%s: %s\n", what, std::string(status.message()).c_str());
  std::exit(1);
}

// Sends `argvs` pipelined and reads every reply.
void Pipeline(Connection& conn, const std::vector<std::vector<std::string>>& argvs) {
  for (const auto& command : argvs) {
    std::vector<absl::string_view> argv(command.begin(), command.end());
    conn.Append(argv);
  }
  Check(conn.Flush(), "flush");
  for (size_t i = 0; i < argvs.size(); ++i) Check(conn.ReadReply().status(), "reply");
}

int Follow(const std::string& source_uri, const std::string& target_uri, double rate,
           double seconds, int keys) {
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> written{0};
  const absl::Time start = absl::Now();
  std::thread writer([&] {
    Connection conn = Open(source_uri);
    constexpr int kBurst = 100;
    uint64_t sent = 0, i = 0;
    std::vector<std::vector<std::string>> burst;
    while (!stop) {
      burst.clear();
      for (int b = 0; b < kBurst; ++b, ++i) {
        burst.push_back(
            {"SET", absl::StrCat("live:", i % keys), absl::StrCat("v", i, "-0123456789")});
      }
      Pipeline(conn, burst);
      sent += kBurst;
      written = sent;
      const absl::Duration wait =
          start + absl::Seconds(static_cast<double>(sent) / rate) - absl::Now();
      if (wait > absl::ZeroDuration()) absl::SleepFor(wait);
    }
  });
  std::thread prober([&] {
    Connection conn = Open(source_uri);
    while (!stop) {
      Check(conn.Command({"SET", "live:probe", absl::StrCat(NowMicros())}).status(), "probe");
      absl::SleepFor(absl::Milliseconds(10));
    }
  });
  std::vector<double> lags_ms;
  {
    Connection target = Open(target_uri);
    std::string last;
    while (absl::Now() - start < absl::Seconds(seconds)) {
      absl::StatusOr<ferry::redis::Reply> reply = target.Command({"GET", "live:probe"});
      Check(reply.status(), "target");
      const std::string value(reply->str());
      int64_t sent_us = 0;
      if (value != last && absl::SimpleAtoi(value, &sent_us)) {
        last = value;
        // The first second is the follower catching up with a start: not counted.
        if (absl::Now() - start > absl::Seconds(1)) {
          lags_ms.push_back(static_cast<double>(NowMicros() - sent_us) / 1000.0);
        }
      }
      absl::SleepFor(absl::Milliseconds(2));
    }
  }
  stop = true;
  writer.join();
  prober.join();
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
  std::sort(lags_ms.begin(), lags_ms.end());
  const auto at = [&](double q) {
    if (lags_ms.empty()) return -1.0;
    return lags_ms[std::min(lags_ms.size() - 1, static_cast<size_t>(q * lags_ms.size()))];
  };
  std::printf(
      "{\"rate\":%.0f,\"achieved\":%.0f,\"samples\":%zu,\"p50_ms\":%.1f,\"p99_ms\":%.1f,"
      "\"max_ms\":%.1f}\n",
      rate, static_cast<double>(written) / elapsed, lags_ms.size(), at(0.5), at(0.99),
      lags_ms.empty() ? -1.0 : lags_ms.back());
  return 0;
}

int Dirty(const std::string& source_uri, int keys) {
  Connection conn = Open(source_uri);
  const absl::Time start = absl::Now();
  constexpr int kPerCommand = 1000;
  std::vector<std::vector<std::string>> batch;
  for (int i = 0; i < keys;) {
    batch.clear();
    for (int c = 0; c < 10 && i < keys; ++c) {
      std::vector<std::string>& mset = batch.emplace_back();
      mset.push_back("MSET");
      for (int k = 0; k < kPerCommand && i < keys; ++k, ++i) {
        mset.push_back(absl::StrCat("dirty:", i));
        mset.push_back("x");
      }
    }
    Pipeline(conn, batch);
  }
  std::printf("{\"keys\":%d,\"seconds\":%.2f}\n", keys, absl::ToDoubleSeconds(absl::Now() - start));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage();
  const std::string mode = argv[1];
  std::string source, target;
  double rate = 10000, seconds = 10;
  int keys = 100000;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--source") {
      source = value;
    } else if (flag == "--target") {
      target = value;
    } else if (flag == "--rate" && absl::SimpleAtod(value, &rate) && rate > 0) {
    } else if (flag == "--seconds" && absl::SimpleAtod(value, &seconds) && seconds > 0) {
    } else if (flag == "--keys" && absl::SimpleAtoi(value, &keys) && keys > 0) {
    } else {
      return Usage();
    }
  }
  if (mode == "follow" && !source.empty() && !target.empty()) {
    return Follow(source, target, rate, seconds, keys);
  }
  if (mode == "dirty" && !source.empty()) return Dirty(source, keys);
  return Usage();
}
