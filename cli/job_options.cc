#include "cli/job_options.h"

#include <cstdlib>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/rpc/credentials.h"
#include "proto/wire/job_defaults.h"

namespace ferry::cli {
namespace {

const char* Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

absl::StatusOr<redis::Endpoint> EndpointFromArgs(const Args& args, const std::string& side,
                                                 const char* password_env,
                                                 std::vector<std::string>* warnings) {
  if (!args.Has(side)) return absl::InvalidArgumentError(absl::StrCat("--", side, " is required"));
  std::string uri = args.Get(side);
  if (args.Has(side + "-iam")) {
    // The flag is the URI option, so the job (and every agent) sees one spelling of it.
    absl::StatusOr<redis::Endpoint> plain = redis::ParseEndpointUri(uri);
    if (plain.ok() && plain->iam.enabled) {
      return absl::InvalidArgumentError(
          absl::StrCat("give IAM authentication in --", side, "-iam or in --", side, ", not both"));
    }
    absl::StrAppend(&uri, absl::StrContains(uri, '?') ? "&" : "?",
                    "iam=1&cluster=", args.Get(side + "-iam"));
  }
  redis::EndpointWarnings parse_warnings;
  absl::StatusOr<redis::Endpoint> endpoint =
      redis::ParseEndpointUri(uri, Env(password_env), &parse_warnings);
  if (!endpoint.ok()) return Annotate(endpoint.status(), absl::StrCat("--", side));
  if (parse_warnings.password_in_uri) {
    warnings->push_back(absl::StrCat("the password in --", side,
                                     " is visible to other users of this machine; prefer ",
                                     password_env));
  }
  if (args.Has(side + "-cacert")) {
    endpoint->ca_file = args.Get(side + "-cacert");
    if (!endpoint->tls) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", side, "-cacert needs a rediss:// URI in --", side));
    }
  }
  if (args.Has(side + "-insecure")) {
    endpoint->verify_peer = false;
    if (endpoint->tls) {
      warnings->push_back(
          absl::StrCat("--", side, "-insecure: the server's TLS certificate is not checked"));
    }
  }
  return endpoint;
}

// What a verification is about; shared by both flag sets.
std::vector<FlagSpec> VerifyTuningFlags(absl::string_view mode_flag) {
  return {
      {std::string(mode_flag), "MODE",
       "full (default): compare values (DUMP payloads, by content where they differ, big keys in "
       "pages); quick: type, TTL and length only"},
      {"ttl-tolerance", "MS",
       absl::StrCat("how far a target key's expiry may be from the source's, beyond the time "
                    "the reads took (default ",
                    wire::kDefaultTtlToleranceMs, ")")},
  };
}

}  // namespace

std::vector<FlagSpec> VerifyFlags() {
  // The job flags a verification shares, said in its own words.
  const std::map<std::string, std::string> kept = {
      {"from", ""},
      {"to", ""},
      {"from-cacert", ""},
      {"to-cacert", ""},
      {"from-insecure", ""},
      {"to-insecure", ""},
      {"from-iam", ""},
      {"to-iam", ""},
      {"db", "databases to verify, e.g. 0,3 (default: every non-empty one)"},
      {"merge-dbs",
       "the copy merged several databases into one: verify them there (extra keys are then "
       "not looked for)"},
      {"read-from", ""},
      {"match", "verify only keys matching this SCAN MATCH pattern"},
      {"type", "verify only keys of this type (string, hash, list, set, zset, stream)"},
      {"batch", ""},
      {"rate-limit", "at most N keys per second on each side (default: no limit)"},
      {"rate-limit-bytes",
       "at most MB megabytes (10^6 bytes) per second of keys and values read from the side each "
       "shard walks (default: no limit)"},
      {"shards", ""},
      {"parallel", absl::StrCat("shards verified at once from each node (default ",
                                wire::kDefaultParallelPerNode, ", up to ",
                                wire::kMaxAutoParallelPerNode, " far from the servers)")},
      {"big-key-bytes",
       absl::StrCat("keys larger than this are compared in pages, never read whole (default ",
                    wire::kDefaultBigKeyBytes >> 20, "MiB)")},
  };
  std::vector<FlagSpec> flags;
  for (FlagSpec& flag : JobFlags()) {
    auto it = kept.find(flag.name);
    if (it == kept.end()) continue;  // What only a copy does, and --verify-mode.
    if (!it->second.empty()) flag.help = it->second;
    flags.push_back(std::move(flag));
  }
  for (FlagSpec& flag : VerifyTuningFlags("mode")) flags.push_back(std::move(flag));
  return flags;
}

std::vector<FlagSpec> JobFlags() {
  std::vector<FlagSpec> flags = {
      {"from", "URI", "source: redis[s]://[user[:password]@]host[:port][/db]"},
      {"to", "URI", "target, same form (a /db sends every database there)"},
      {"from-cacert", "FILE", "PEM CA bundle that signed the source's certificate"},
      {"to-cacert", "FILE", "PEM CA bundle that signed the target's certificate"},
      {"from-insecure", "", "do not verify the source's TLS certificate (warns)"},
      {"to-insecure", "", "do not verify the target's TLS certificate (warns)"},
      {"from-iam", "CLUSTER",
       "ElastiCache IAM authentication to the source's replication group or serverless cache "
       "(the URI's ?iam=1&cluster=CLUSTER; region= and the rest in the URI or AWS_REGION)"},
      {"to-iam", "CLUSTER", "the same for the target"},
      {"db", "LIST", "databases to copy, e.g. 0,3 (default: every non-empty one)"},
      {"merge-dbs", "",
       "copy several databases into one (db 0, or the --to URI's db): a cluster"
       " target has only db 0"},
      {"read-from", "NODES",
       "primary (default) or replica: which nodes of a source cluster are read"},
      {"match", "PATTERN", "copy only keys matching this SCAN MATCH pattern"},
      {"type", "TYPE", "copy only keys of this type (string, hash, list, set, zset, stream)"},
      {"batch", "N",
       absl::StrCat("keys per SCAN/DUMP/RESTORE round trip (default ", wire::kDefaultBatchKeys,
                    ")")},
      {"rate-limit", "N", "at most N keys per second for the whole job (default: no limit)"},
      {"rate-limit-bytes", "MB",
       "at most MB megabytes (10^6 bytes) per second of keys and values read from the source, "
       "for the whole job across agents (default: no limit)"},
      {"on-conflict", "POLICY", "replace (default), skip, or fail when a key exists on the target"},
      {"shards", "N", "shards per database (default: from its key count)"},
      {"parallel", "N",
       absl::StrCat("shards copied at once from each source node (default ",
                    wire::kDefaultParallelPerNode, ", up to ", wire::kMaxAutoParallelPerNode,
                    " when the round trip to the servers is long; a cluster source with 3 "
                    "primaries copies up to 3N at once)")},
      {"dry-run", "", "read and count, write nothing"},
      {"copy-path", "PATH",
       "auto (default): DUMP/RESTORE where the target reads the source's payloads, plain "
       "commands type by type where it cannot or refuses RESTORE; typed: always type by type"},
      {"big-key-bytes", "SIZE",
       absl::StrCat("keys larger than this (MEMORY USAGE) are copied in chunks, so no command "
                    "blocks either server for long (default ",
                    wire::kDefaultBigKeyBytes >> 20,
                    "MiB; e.g. 512k, 8MB); off: no key is big, sizes are not probed (one "
                    "command per key less on the source)")},
      {"drop-field-ttls", "",
       "copy hashes with field TTLs into a target without them, dropping those TTLs (default: "
       "such keys fail)"},
      {"verify", "", "ferry migrate: after the copy, verify the target against the source"},
      {"verify-only", "", "ferry submit: a verify job (compare, write nothing), not a copy"},
  };
  for (FlagSpec& flag : VerifyTuningFlags("verify-mode")) flags.push_back(std::move(flag));
  flags.push_back(
      {"live", "",
       "after the snapshot, follow the source's keyspace notifications (notify-keyspace-events "
       "KA) and keep the target current until a cutover (ferry cutover JOB)"});
  flags.push_back(
      {"live-dirty-bytes", "SIZE",
       absl::StrCat("--live: key names one source node and database may hold waiting to be "
                    "copied before a rescan covers the overflow (default ",
                    wire::kDefaultLiveDirtyBytes >> 20, "MiB; e.g. 64MB)")});
  return flags;
}

std::vector<FlagSpec> ServeFlags() {
  return {
      {"listen", "ADDR",
       "also serve the controller API here (e.g. 127.0.0.1:7700, port 0 picks one), for ferry "
       "status, watch and cutover --controller ADDR from another shell; a non-loopback address "
       "needs TLS and a token unless --insecure"},
      {"tls-cert", "FILE", "--listen: PEM certificate chain of the embedded controller"},
      {"tls-key", "FILE", "--listen: PEM private key of the embedded controller"},
      {"token-file", "FILE", "--listen: bearer token that clients must send"},
      {"insecure", "", "--listen: allow a non-loopback address without TLS or token"},
      {"cutover-verify", "MODE",
       "--live: once the cutover converged, verify quick (default), full or none; a cutover "
       "that verified more lightly is followed by this mode's verification"},
  };
}

std::vector<FlagSpec> LocalFlags(bool verify) {
  std::vector<FlagSpec> specs = verify ? VerifyFlags() : JobFlags();
  specs.insert(
      specs.end(),
      {
          {"progress", "MODE",
           "auto (default: a bar on a terminal, else log lines), bar, log, none"},
          {"output", "FORMAT", "text (default) or json: the final summary on stdout"},
          {"agents", "N",
           "agents in this process (default 2); together they run --parallel shards per"
           " source node"},
          {"state", "FILE",
           verify ? "keep the job's state here; an interrupted verification resumes from it"
                  : "keep the job's state here; an interrupted migration resumes from it"},
          {"plan-retry-seconds", "N",
           "retry planning this long after a transient error (a server unreachable, stopped,"
           " loading, failing over), saying what it waits for (default 10, 0: fail at once)"},
      });
  if (!verify) {
    for (FlagSpec& flag : ServeFlags()) specs.push_back(std::move(flag));
  }
  specs.push_back({"help", "", "show this help"});
  return specs;
}

absl::StatusOr<ServeRequest> ServeRequestFromArgs(const Args& args) {
  ServeRequest r;
  r.listen = args.Get("listen");
  for (const char* flag : {"tls-cert", "tls-key", "token-file", "insecure"}) {
    if (args.Has(flag) && r.listen.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, " is for the address --listen serves: add --listen"));
    }
  }
  r.tls_cert = args.Get("tls-cert");
  r.tls_key = args.Get("tls-key");
  if (r.tls_cert.empty() != r.tls_key.empty()) {
    return absl::InvalidArgumentError("TLS needs both --tls-cert and --tls-key");
  }
  if (args.Has("token-file")) {
    FERRY_ASSIGN_OR_RETURN(r.token, rpc::ReadTokenFile(args.Get("token-file")));
  }
  r.insecure = args.Has("insecure");
  return r;
}

absl::StatusOr<CutoverVerify> ParseCutoverVerify(absl::string_view flag, absl::string_view text) {
  if (text == "quick") return CutoverVerify::kQuick;
  if (text == "full") return CutoverVerify::kFull;
  if (text == "none") return CutoverVerify::kNone;
  return absl::InvalidArgumentError(
      absl::StrCat(flag, " must be quick, full or none, not \"", text, "\""));
}

namespace {

// --live and what goes with it; the combinations that make no sense are INVALID_ARGUMENT.
absl::Status LiveFromArgs(const Args& args, JobRequest* r) {
  r->live = args.Has("live");
  if (!r->live) {
    for (const char* flag : {"live-dirty-bytes", "cutover-verify"}) {
      if (args.Has(flag)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", flag, " is for live jobs: add --live"));
      }
    }
    return absl::OkStatus();
  }
  if (r->dry_run) {
    return absl::InvalidArgumentError(
        "--live keeps the target current by writing to it and --dry-run writes nothing: give "
        "one of them");
  }
  if (args.Has("verify-only")) {
    return absl::InvalidArgumentError(
        "--verify-only submits a verification, which does not follow the source: drop --live");
  }
  if (args.Has("verify") || args.Has("verify-mode")) {
    return absl::InvalidArgumentError(
        absl::StrCat("--live with --", args.Has("verify") ? "verify" : "verify-mode",
                     ": a live job is verified by its cutover (ferry migrate --cutover-verify "
                     "quick|full|none, ferry cutover --verify-mode)"));
  }
  if (r->on_conflict != agent::OnConflict::kReplace) {
    return absl::InvalidArgumentError(
        "--live keeps the target equal to the source and replaces what the target holds: "
        "--on-conflict skip or fail cannot be kept; use an empty target or --on-conflict "
        "replace");
  }
  r->live_dirty_bytes = wire::kDefaultLiveDirtyBytes;
  if (args.Has("live-dirty-bytes")) {
    FERRY_ASSIGN_OR_RETURN(r->live_dirty_bytes,
                           ParseBytes("--live-dirty-bytes", args.Get("live-dirty-bytes")));
    if (r->live_dirty_bytes < 1024) {
      return absl::InvalidArgumentError("--live-dirty-bytes must be at least 1k");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<JobRequest> JobRequestFromArgs(const Args& args,
                                              std::vector<std::string>* warnings) {
  JobRequest r;
  FERRY_ASSIGN_OR_RETURN(r.source, EndpointFromArgs(args, "from", "FERRY_FROM_PASSWORD", warnings));
  FERRY_ASSIGN_OR_RETURN(r.target, EndpointFromArgs(args, "to", "FERRY_TO_PASSWORD", warnings));
  r.target_db = r.target.db;
  FERRY_ASSIGN_OR_RETURN(r.dbs, args.GetIntList("db"));
  if (!r.dbs.empty() && r.source.db.has_value()) {
    return absl::InvalidArgumentError("give the source database either in --from or in --db");
  }
  r.match = args.Get("match");
  r.type = args.Get("type");
  FERRY_ASSIGN_OR_RETURN(int64_t batch, args.GetInt("batch", wire::kDefaultBatchKeys, 1, 100000));
  r.batch_keys = static_cast<int>(batch);
  FERRY_ASSIGN_OR_RETURN(r.rate_limit, args.GetDouble("rate-limit", 0, 0));
  FERRY_ASSIGN_OR_RETURN(const double megabytes, args.GetDouble("rate-limit-bytes", 0, 0));
  r.rate_limit_bytes = megabytes * 1e6;
  FERRY_ASSIGN_OR_RETURN(int64_t shards, args.GetInt("shards", 0, 0, 65536));
  r.shards = static_cast<int>(shards);
  FERRY_ASSIGN_OR_RETURN(int64_t parallel,
                         args.GetInt("parallel", wire::kDefaultParallelPerNode, 1, 1024));
  // Not given: 0, and the controller chooses from the round trips it measures.
  r.parallel = args.Has("parallel") ? static_cast<int>(parallel) : 0;
  r.dry_run = args.Has("dry-run");
  r.merge_dbs = args.Has("merge-dbs");
  const std::string read_from = args.Get("read-from", "primary");
  if (read_from != "primary" && read_from != "replica") {
    return absl::InvalidArgumentError(
        absl::StrCat("--read-from must be primary or replica, not \"", read_from, "\""));
  }
  r.read_from_replicas = read_from == "replica";
  const std::string copy_path = args.Get("copy-path", "auto");
  if (copy_path != "auto" && copy_path != "typed") {
    return absl::InvalidArgumentError(
        absl::StrCat("--copy-path must be auto or typed, not \"", copy_path, "\""));
  }
  r.typed_only = copy_path == "typed";
  if (args.Get("big-key-bytes") == "off") {
    r.big_key_bytes = wire::kBigKeysOff;
  } else if (args.Has("big-key-bytes")) {
    FERRY_ASSIGN_OR_RETURN(r.big_key_bytes,
                           ParseBytes("--big-key-bytes", args.Get("big-key-bytes")));
    if (r.big_key_bytes < 1024) {
      return absl::InvalidArgumentError("--big-key-bytes must be at least 1k");
    }
  }
  r.drop_field_ttls = args.Has("drop-field-ttls");
  r.verify = args.Has("verify-only");
  const std::string mode = args.Has("mode") ? args.Get("mode") : args.Get("verify-mode", "full");
  if (mode != "full" && mode != "quick") {
    return absl::InvalidArgumentError(absl::StrCat(args.Has("mode") ? "--mode" : "--verify-mode",
                                                   " must be full or quick, not \"", mode, "\""));
  }
  r.verify_full = mode == "full";
  FERRY_ASSIGN_OR_RETURN(int64_t tolerance, args.GetInt("ttl-tolerance", 0, 0, 3600 * 1000));
  r.ttl_tolerance_ms = static_cast<uint32_t>(tolerance);
  const std::string policy = args.Get("on-conflict", "replace");
  if (policy == "replace") {
    r.on_conflict = agent::OnConflict::kReplace;
  } else if (policy == "skip") {
    r.on_conflict = agent::OnConflict::kSkip;
  } else if (policy == "fail") {
    r.on_conflict = agent::OnConflict::kFail;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--on-conflict must be replace, skip or fail, not \"", policy, "\""));
  }
  FERRY_RETURN_IF_ERROR(LiveFromArgs(args, &r));
  return r;
}

absl::StatusOr<uint64_t> ParseBytes(absl::string_view flag, absl::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && absl::ascii_isdigit(static_cast<unsigned char>(text[digits]))) {
    ++digits;
  }
  uint64_t value = 0;
  const std::string unit = absl::AsciiStrToLower(text.substr(digits));
  int shift = -1;
  if (unit.empty() || unit == "b") shift = 0;
  for (const auto& [prefix, bits] : {std::pair<const char*, int>{"k", 10}, {"m", 20}, {"g", 30}}) {
    if (unit == prefix || unit == absl::StrCat(prefix, "b") || unit == absl::StrCat(prefix, "ib")) {
      shift = bits;
    }
  }
  if (digits == 0 || shift < 0 || !absl::SimpleAtoi(text.substr(0, digits), &value) ||
      value > (~uint64_t{0} >> shift)) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " must be a size such as 65536, 512k or 8MB, not \"", text, "\""));
  }
  return value << shift;
}

int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 0;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kNotFound:
      return 2;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
      return 3;
    case absl::StatusCode::kCancelled:
      return 130;
    default:
      return 1;
  }
}

}  // namespace ferry::cli
