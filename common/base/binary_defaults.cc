// Settings of ferry's binaries that the libraries and the tests do not get.
//
// absl::Mutex detects lock-order cycles unless Abseil was built with NDEBUG, and Debian's is
// not: every lock and unlock then updates a process-wide graph of held locks. Under 1,000
// simulated agents that was 5% of the controller's CPU (GraphCycles::GetId alone). The binaries
// turn it off; the unit tests keep it, and the TSan and thread-safety-analysis builds check the
// locking.

#include "absl/synchronization/mutex.h"

namespace {

// Before main() and before any thread: absl's mode is a constant-initialized atomic.
[[maybe_unused]] const bool kDeadlockDetectionOff = [] {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return true;
}();

}  // namespace
