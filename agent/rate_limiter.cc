#include "agent/rate_limiter.h"

#include <algorithm>

namespace ferry::agent {

bool RateLimiter::Acquire(double n, const std::atomic<bool>* cancel) {
  for (;;) {
    if (cancel != nullptr && cancel->load()) return false;
    absl::Duration wait;
    {
      absl::MutexLock lock(&mu_);
      if (rate_ <= 0) return true;
      const absl::Time now = absl::Now();
      tokens_ = std::min(rate_, tokens_ + rate_ * absl::ToDoubleSeconds(now - last_));
      last_ = now;
      const double need = std::min(n, rate_);
      if (tokens_ >= need) {
        tokens_ -= n;  // May go negative for a request larger than the bucket: paid back later.
        return true;
      }
      wait = absl::Seconds((need - tokens_) / rate_);
    }
    // Sleep in short slices so a cancel is noticed quickly.
    absl::SleepFor(std::min(wait, absl::Milliseconds(100)));
  }
}

void RateLimiter::SetRate(double per_second) {
  absl::MutexLock lock(&mu_);
  rate_ = per_second;
  tokens_ = std::min(tokens_, std::max(per_second, 0.0));
}

}  // namespace ferry::agent
