#pragma once

#include <atomic>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace ferry::agent {

// A token bucket of keys per second. Each lease owns one (LeaseRunner): the controller splits a
// job's rate limit into per-lease shares and changes them with SetRate as leases come and go.
// Thread-safe: the lease's reading thread acquires while the session thread sets the rate.
class RateLimiter {
 public:
  // `per_second` <= 0 means no limit. The bucket holds at most one second of tokens.
  explicit RateLimiter(double per_second) : rate_(per_second) {}

  // Blocks until `n` tokens are available (a request larger than the bucket is let through once
  // the bucket is full, so big batches still move), or `cancel` becomes true (returns false).
  bool Acquire(double n, const std::atomic<bool>* cancel) ABSL_LOCKS_EXCLUDED(mu_);

  void SetRate(double per_second) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  double rate_ ABSL_GUARDED_BY(mu_);
  double tokens_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_ ABSL_GUARDED_BY(mu_) = absl::Now();
};

}  // namespace ferry::agent
