#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/copier.h"
#include "cli/args.h"
#include "common/redis/endpoint.h"
#include "proto/wire/job_defaults.h"

namespace ferry::cli {

// What to copy and how: the options `ferry migrate` and `ferry submit` share.
struct JobRequest {
  redis::Endpoint source;
  redis::Endpoint target;
  std::vector<int> dbs;          // Empty: the source URI's db, else every non-empty one.
  std::optional<int> target_db;  // From the target URI's path.
  std::string match;
  std::string type;
  int batch_keys = wire::kDefaultBatchKeys;
  double rate_limit = 0;        // Keys per second for the whole job; 0: unlimited.
  double rate_limit_bytes = 0;  // Source bytes read per second for the whole job; 0: unlimited.
  agent::OnConflict on_conflict = agent::OnConflict::kReplace;
  int shards = 0;                                // Per database; 0: planned from the key count.
  int parallel = wire::kDefaultParallelPerNode;  // Shards copied at once from each source node
                                                 // (JobSpec.parallel).
  bool dry_run = false;
  bool merge_dbs = false;           // Several source databases into one (a cluster's db 0).
  bool read_from_replicas = false;  // Cluster source: read replicas (READONLY).
  bool typed_only = false;          // --copy-path typed.
  uint64_t big_key_bytes = wire::kDefaultBigKeyBytes;
  bool drop_field_ttls = false;
  // A verify job (ferry verify, ferry submit --verify-only) rather than a copy.
  bool verify = false;
  bool verify_full = true;        // --mode / --verify-mode: full (values) or quick.
  uint32_t ttl_tolerance_ms = 0;  // 0: the default (wire::kDefaultTtlToleranceMs).
  // --live: after the snapshot, follow the source's keyspace notifications until a cutover.
  bool live = false;
  uint64_t live_dirty_bytes = 0;  // Live jobs: wire::kDefaultLiveDirtyBytes unless given.
};

// What `ferry migrate --live` verifies once the cutover has converged (--cutover-verify), and
// what `ferry cutover` asks the controller for (--verify-mode).
enum class CutoverVerify { kQuick, kFull, kNone };

// "quick", "full" or "none"; INVALID_ARGUMENT naming `flag` for anything else.
absl::StatusOr<CutoverVerify> ParseCutoverVerify(absl::string_view flag, absl::string_view text);

// `ferry migrate --listen`: the embedded controller also serves the Controller API there, with
// ferry-controller's rules (loopback only unless TLS and a token, or --insecure).
struct ServeRequest {
  std::string listen;  // Empty: in-process only.
  std::string tls_cert;
  std::string tls_key;
  std::string token;  // The token itself (read from --token-file).
  bool insecure = false;
};

// ferry migrate's own flags besides the job's: --listen, --tls-cert, --tls-key, --token-file,
// --insecure, --cutover-verify.
std::vector<FlagSpec> ServeFlags();
// The flags of `ferry migrate` (`verify` false) or `ferry verify`: the job's, the local run's
// (--progress, --output, --agents, --state), migrate's ServeFlags, and --help.
std::vector<FlagSpec> LocalFlags(bool verify);

// ServeRequest from parsed flags. INVALID_ARGUMENT for security flags without --listen, a
// certificate without its key (or the reverse), or an unreadable token file.
absl::StatusOr<ServeRequest> ServeRequestFromArgs(const Args& args);

// "512", "64k", "1MB", "2GiB" as bytes (k, m, g with an optional B or iB: powers of 1024).
// INVALID_ARGUMENT naming `flag` for anything else.
absl::StatusOr<uint64_t> ParseBytes(absl::string_view flag, absl::string_view text);

// The flags behind JobRequest, for parsing and help: every one (`ferry submit`, `ferry
// migrate`), and those of a verification (`ferry verify`: no write options, and --mode).
std::vector<FlagSpec> JobFlags();
std::vector<FlagSpec> VerifyFlags();

// Builds a JobRequest from parsed flags and FERRY_FROM_PASSWORD / FERRY_TO_PASSWORD. Warnings
// (password in a URI, TLS verification off) are appended to `warnings`. Errors are
// INVALID_ARGUMENT and never contain a password.
absl::StatusOr<JobRequest> JobRequestFromArgs(const Args& args, std::vector<std::string>* warnings);

// The documented exit codes: 0 ok, 1 finished with failed keys or failed, 2 usage or
// configuration, 3 cannot connect, authenticate or lacks permission, 130 interrupted.
int ExitCodeFor(const absl::Status& status);

}  // namespace ferry::cli
