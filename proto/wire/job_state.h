#pragma once

// Facts about a job's state that the controller and every client must agree on.

#include "ferry/v1/ferry.pb.h"

namespace ferry::wire {

// DONE, DONE_WITH_ERRORS, FAILED, CANCELLED or CUTOVER_READY: nothing runs any more (FAILED
// can still be resumed, which starts it again).
inline bool IsEnded(ferry::v1::JobState state) {
  return state == ferry::v1::JOB_STATE_DONE || state == ferry::v1::JOB_STATE_DONE_WITH_ERRORS ||
         state == ferry::v1::JOB_STATE_FAILED || state == ferry::v1::JOB_STATE_CANCELLED ||
         state == ferry::v1::JOB_STATE_CUTOVER_READY;
}

// PENDING, RUNNING, LIVE or CUTOVER: shards may be leased.
inline bool IsRunnable(ferry::v1::JobState state) {
  return state == ferry::v1::JOB_STATE_PENDING || state == ferry::v1::JOB_STATE_RUNNING ||
         state == ferry::v1::JOB_STATE_LIVE || state == ferry::v1::JOB_STATE_CUTOVER;
}

}  // namespace ferry::wire
