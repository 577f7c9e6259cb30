#pragma once

// A writer that mutates a Redis database at a given rate with every kind of write live sync must
// follow (SET, INCR, HSET, HDEL, LPUSH, ZADD, XADD, DEL, EXPIRE, PERSIST, RENAME, and keys that
// expire on their own), for the live sync tests and benchmark. Test support only.

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/redis/endpoint.h"

namespace ferry::testing {

struct LiveWriterOptions {
  double ops_per_second = 3000;
  int keys = 2000;    // Per key family (strings, counters, hashes, lists, zsets, streams).
  uint64_t seed = 1;  // The same seed writes the same sequence.
  int burst = 50;     // Commands per pipelined round trip.
  // Only SET of small strings on "s:<i>" (the benchmark's small keys); else the full mix.
  bool strings_only = false;
};

// Writes on its own thread from Start() to Stop(). Replies are read and errors counted (a
// WRONGTYPE or "no such key" of RENAME are part of the mix), transport errors end the thread.
class LiveWriter {
 public:
  LiveWriter(redis::Endpoint endpoint, int db, LiveWriterOptions options);
  ~LiveWriter();
  LiveWriter(const LiveWriter&) = delete;
  LiveWriter& operator=(const LiveWriter&) = delete;

  void Start();
  // Stops and joins; the first transport error, if any.
  absl::Status Stop();
  uint64_t ops() const { return ops_; }

 private:
  void Run();

  const redis::Endpoint endpoint_;
  const int db_;
  const LiveWriterOptions options_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> ops_{0};
  std::thread thread_;
  absl::Mutex mu_;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ferry::testing
