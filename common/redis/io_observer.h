#pragma once

// What the connections of one side of a copy did, told as it happens: for the agent's metrics
// (agent/metrics.h). Set in ConnectOptions::observer; not owned.

#include "absl/time/time.h"

namespace ferry::redis {

// Why a Router sent commands again.
enum class RetryReason {
  kMoved,       // MOVED: the slot has a new owner.
  kAsk,         // ASK: the slot is being migrated.
  kBusy,        // TRYAGAIN, CLUSTERDOWN, LOADING, MASTERDOWN.
  kConnection,  // The connection was lost (or could not be opened).
};

// Called from the thread that uses the connection: implementations must be thread-safe when
// several connections share one, and cheap (it runs on the copy's hot path).
class IoObserver {
 public:
  virtual ~IoObserver() = default;
  // One pipeline: from the Flush that sent commands while none was in flight to the reply that
  // left none pending (a single command's round trip, or a batch's).
  virtual void RoundTrip(absl::Duration elapsed) = 0;
  // A command a Router sends again, and why.
  virtual void Retry(RetryReason reason) = 0;
};

}  // namespace ferry::redis
