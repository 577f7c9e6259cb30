#pragma once

// How a live job's following reads, in every output: the live line that replaces the progress
// bar once the snapshot is done, the live section of `ferry status`, the "live" object of the
// JSON reports, and the live figures of a report. Never a value or a password.

#include <string>

#include "cli/progress.h"
#include "ferry/v1/ferry.pb.h"

namespace ferry::cli {

// A live job past its snapshot (LIVE, CUTOVER, CUTOVER_READY): its progress is the live line.
bool ShowsLiveLine(const ProgressSnapshot& s);

// One line, by state:
//   "live: lag 35 ms, 2.1k events/s, 12 dirty keys, 1 gap, 1 rescan, in sync"
//   "live: lag 1.2 s, ..., not in sync: rescanning 10.0.0.5:6379 db 0 (subscription dropped)"
//   "cutover: waiting for the markers, 120 dirty keys to drain, lag 30 ms, 5 events/s"
//   "cutover ready: converged, 0 dirty keys, 1 gap, 1 rescan"
// "in sync" only when `live.in_sync()`; nodes not in sync are named (the first three), those
// rescanning with the reason of their last gap.
std::string LiveLine(ferry::v1::JobState state, const ferry::v1::LiveProgress& live);

// A live job's snapshot once it is done, which its rate no longer describes: "snapshot: 20,000
// keys copied, 0 failed, shards 2/2".
std::string SnapshotLine(const ProgressSnapshot& s);

// `ferry status`: the live line, the keys written and deleted while following, the last
// cutover error and the verification, then a table with one row per node (node, db, state,
// lag, events/s, dirty keys, gaps, rescans, last gap). Every line indented by two spaces.
std::string LiveSection(ferry::v1::JobState state, const ferry::v1::LiveProgress& live);

// The figures a report ends with: keys written and deleted while following, gaps and rescans,
// the last cutover error and the verification. Indented lines.
std::string LiveReport(const ferry::v1::LiveProgress& live);

// {"in_sync":true,"lag_ms":35,...,"nodes":[{"node":"h:6379","db":0,...}]}: every field of
// LiveProgress and, per node, node, db, state, in_sync, lag_ms, events_per_second,
// dirty_keys, dirty_bytes, gaps, rescans, last_gap (null when none).
std::string LiveJson(const ferry::v1::LiveProgress& live);

}  // namespace ferry::cli
