#pragma once

// The waits between attempts: exponential, capped, with jitter so that many waiters (a fleet
// whose controller restarted, the jobs of a controller whose source went away) do not come back
// in lockstep. Used by the agent's reconnects and the controller's planning retries.

#include "absl/random/bit_gen_ref.h"
#include "absl/time/time.h"

namespace ferry {

// Not thread-safe (its owner's: the reconnect loop, a job's planning retries).
class Backoff {
 public:
  // The first wait is about `initial`, then each one doubles up to `max`.
  Backoff(absl::Duration initial, absl::Duration max)
      : initial_(initial), max_(max), current_(initial) {}

  // The wait before the next attempt: up to 20% less than the current backoff (uniformly),
  // which then doubles, capped at `max`.
  absl::Duration Next(absl::BitGenRef random);
  // After a connection that worked: start again from `initial`.
  void Reset() { current_ = initial_; }
  // The backoff the next wait is drawn from.
  absl::Duration current() const { return current_; }

 private:
  const absl::Duration initial_;
  const absl::Duration max_;
  absl::Duration current_;
};

}  // namespace ferry
