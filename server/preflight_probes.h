#pragma once

// The permission probes of preflight (preflight.cc): every command the copy sends, checked on
// each side before the first write, each in a form that changes nothing. Used by preflight.cc
// only.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/redis/connection.h"
#include "server/planner.h"
#include "server/preflight.h"
#include "server/preflight_report.h"

namespace ferry::server {

// The key a probe names: one the copy will touch when `sampled`.
struct ProbeKey {
  std::string name;
  bool sampled = false;
  int payload_version = -1;  // Of its DUMP, when sampled and dumped.
};

// The first key SCAN returns in the selected database (with `match`) that is not a big key
// (MEMORY USAGE at most `max_bytes`: probes DUMP it), so that a user limited to key patterns
// (`~app:*`) is probed on a key it must copy; ferry's own fallback name when none is found.
absl::StatusOr<ProbeKey> SampleKey(redis::Connection& conn, absl::string_view match,
                                   uint64_t max_bytes);

// SCAN, then PTTL, DUMP and (`mget`: standalone sources read strings with it) MGET on a key the
// copy reads; returns that key. Each refused command is an error in `findings` (permissions);
// the returned status fails only when the connection does.
// TYPE too: refused, an error where the job needs it for every key (--copy-path typed, --type on
// a server without SCAN's TYPE option, a verify job), else a warning (big keys and streams are
// read type by type). `caps`: the server's.
absl::StatusOr<ProbeKey> ProbeReads(const PlanRequest& request, redis::Connection& conn,
                                    const redis::Capabilities& caps, absl::string_view side,
                                    bool mget, Findings& findings);

// The target's write commands as the copy sends them (RESTORE, SET, then DEL or GET and DUMP,
// and SET/RENAME of ferry's temporary keys), on `sample_key` (a source key; empty: a name of
// ferry's own). A job sends each in a form the server refuses after its ACL check, so nothing
// is written. With request.no_writes (ferry preflight) no write command is sent at all: each
// is asked with ACL DRYRUN where the server has it and the user may run it, else sent in that
// form only on request.probe_key (a key the target does not hold), else reported not checked
// (target.writes_unchecked). A refused RESTORE is no error (keys are then copied type by type):
// target.restore_refusal says why; a refusal of ferry's temporary keys goes to
// target.temp_key_refusal.
absl::Status ProbeWrites(const PlanRequest& request, redis::Connection& conn,
                         absl::string_view sample_key, Deployment& target, Findings& findings);

}  // namespace ferry::server
