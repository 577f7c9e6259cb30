#include "cli/job_options.h"

#include <cstdlib>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
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
  redis::EndpointWarnings parse_warnings;
  absl::StatusOr<redis::Endpoint> endpoint =
      redis::ParseEndpointUri(args.Get(side), Env(password_env), &parse_warnings);
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
      {"db", "databases to verify, e.g. 0,3 (default: every non-empty one)"},
      {"merge-dbs",
       "the copy merged several databases into one: verify them there (extra keys are then "
       "not looked for)"},
      {"read-from", ""},
      {"match", "verify only keys matching this SCAN MATCH pattern"},
      {"type", "verify only keys of this type (string, hash, list, set, zset, stream)"},
      {"batch", ""},
      {"rate-limit", "at most N keys per second on each side (default: no limit)"},
      {"shards", ""},
      {"parallel", absl::StrCat("shards verified at once from each node (default ",
                                wire::kDefaultParallelPerNode, ")")},
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
      {"on-conflict", "POLICY", "replace (default), skip, or fail when a key exists on the target"},
      {"shards", "N", "shards per database (default: from its key count)"},
      {"parallel", "N",
       absl::StrCat("shards copied at once from each source node (default ",
                    wire::kDefaultParallelPerNode,
                    "; a cluster source with 3 primaries copies up to 3N at once)")},
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
  return flags;
}

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
  FERRY_ASSIGN_OR_RETURN(int64_t shards, args.GetInt("shards", 0, 0, 65536));
  r.shards = static_cast<int>(shards);
  FERRY_ASSIGN_OR_RETURN(int64_t parallel,
                         args.GetInt("parallel", wire::kDefaultParallelPerNode, 1, 1024));
  r.parallel = static_cast<int>(parallel);
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
