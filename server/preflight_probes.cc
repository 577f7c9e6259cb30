#include "server/preflight_probes.h"

#include <initializer_list>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"
#include "common/redis/dump_payload.h"
#include "common/redis/errors.h"

namespace ferry::server {
namespace {

using redis::Connection;
using redis::Reply;

// The commands the permission probes check; named in every refusal.
constexpr absl::string_view kNeeded =
    "ferry needs SCAN, PTTL, DUMP and MGET on the source and SET, DEL (GET and DUMP with "
    "--on-conflict skip or fail), RESTORE or else each type's write commands and RENAME on the "
    "target";
// The key probes name when no key to copy was found. ACL checks a command before its keys, so
// a refusal of this key's pattern still says that the command is allowed.
constexpr absl::string_view kFallbackKey = "ferry:preflight";
// SCAN calls (COUNT 100) spent looking for a key to probe with.
constexpr int kSampleScans = 10;

absl::Status KeyRefused(absl::string_view side, const ProbeKey& key, absl::string_view command,
                        absl::string_view why) {
  return absl::PermissionDeniedError(
      absl::StrCat("the ", side, " user may not access key '", absl::CHexEscape(key.name), "' (",
                   command, ": ", why, "): its ACL key patterns must cover every key copied"));
}

absl::Status CommandRefused(absl::string_view side, absl::string_view command,
                            absl::string_view why) {
  return absl::PermissionDeniedError(
      absl::StrCat("the ", side, " does not allow ", command, " (", why, "); ", kNeeded));
}

// Sends `argv` and accepts any reply but a permission problem, which it explains. A MOVED
// reply (the probe key's slot lives elsewhere) comes after the ACL check, so it passes. `key`
// is the key in argv, if any. `reply_out`, when given, receives the reply of an allowed
// command; `refusal`, the server's own words when it refuses.
absl::Status ProbeCommand(Connection& conn, absl::string_view side, const ProbeKey* key,
                          absl::Span<const absl::string_view> argv, Reply* reply_out = nullptr,
                          std::string* refusal = nullptr) {
  absl::StatusOr<Reply> reply = conn.Command(argv);
  if (reply.ok()) {
    if (reply_out != nullptr) *reply_out = *std::move(reply);
    return absl::OkStatus();
  }
  const absl::Status& s = reply.status();
  switch (s.code()) {
    case absl::StatusCode::kPermissionDenied:
      if (refusal != nullptr) *refusal = std::string(s.message());
      if (key != nullptr && redis::ClassifyRefusal(s.message()) == redis::Refusal::kKey) {
        if (!key->sampled) return absl::OkStatus();  // Not a key the copy touches.
        return KeyRefused(side, *key, argv.front(), s.message());
      }
      return CommandRefused(side, argv.front(), s.message());
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kResourceExhausted:
      return Annotate(s, side);
    default:
      return absl::OkStatus();  // Bad payload, wrong args, MOVED: the command is allowed.
  }
}

absl::Status ProbeCommand(Connection& conn, absl::string_view side, const ProbeKey* key,
                          std::initializer_list<absl::string_view> argv,
                          Reply* reply_out = nullptr) {
  return ProbeCommand(conn, side, key, absl::MakeConstSpan(argv.begin(), argv.size()), reply_out);
}

// A refusal becomes an error finding (the probes go on); anything else that failed ends them.
absl::Status Record(Findings& findings, const absl::Status& status) {
  if (status.code() != absl::StatusCode::kPermissionDenied) return status;
  findings.Error(check::kPermissions, status);
  return absl::OkStatus();
}

// How the target's write commands are checked.
enum class WriteCheck { kProbe, kDryRun, kNone };

// One write command the copy sends, in the form a probe sends it.
struct WriteProbe {
  enum Role { kRestore, kTempKey, kNeededCommand };
  Role role;
  ProbeKey key;
  std::vector<std::string> argv;
};

std::vector<WriteProbe> WriteProbes(const PlanRequest& request, const ProbeKey& key,
                                    absl::string_view del_key) {
  // Values copied type by type are built in temporary keys of ferry's own, then renamed: SET
  // with PX 0 ("invalid expire time") and RENAME of a key nobody has ("no such key") check the
  // user's commands and key patterns without writing.
  const std::string temp =
      absl::StrCat("ferry:tmp:{0}:preflight:", absl::Hex(std::random_device()()));
  const ProbeKey temp_key{temp, true};
  std::vector<WriteProbe> probes = {
      // An invalid payload: "payload version or checksum are wrong" (or BUSYKEY) when allowed.
      {WriteProbe::kRestore, key, {"RESTORE", key.name, "0", "ferry-probe"}},
      {WriteProbe::kTempKey, temp_key, {"SET", temp, "x", "PX", "0"}},
      {WriteProbe::kTempKey, temp_key, {"RENAME", temp, temp + ":renamed"}},
      // Strings are written with SET; PX 0 is "invalid expire time".
      {WriteProbe::kNeededCommand, key, {"SET", key.name, "x", "PX", "0"}},
  };
  if (!request.replace) {
    // Keys found on the target are read, to tell this job's own earlier writes from conflicts.
    probes.push_back({WriteProbe::kNeededCommand, key, {"GET", key.name}});
    probes.push_back({WriteProbe::kNeededCommand, key, {"DUMP", key.name}});
  } else {
    // Keys that expire on the way are deleted. DEL has no form that fails after the ACL check,
    // so it names a key nobody has. Its pattern may be refused; the command is what counts.
    probes.push_back({WriteProbe::kNeededCommand,
                      ProbeKey{std::string(del_key), false},
                      {"DEL", std::string(del_key)}});
  }
  return probes;
}

// The commands `probes` check, for messages: "RESTORE, SET, DEL, and SET, RENAME of ferry:tmp:*".
std::string CommandsOf(const std::vector<WriteProbe>& probes) {
  std::vector<std::string> keys, temp;
  for (const WriteProbe& p : probes) {
    (p.role == WriteProbe::kTempKey ? temp : keys).push_back(p.argv.front());
  }
  return absl::StrCat(absl::StrJoin(keys, ", "), ", and ", absl::StrJoin(temp, ", "),
                      " of ferry:tmp:* keys");
}

// 128 random bits after ferry's prefix: a key nobody has.
std::string UnusedKey() {
  std::random_device random;
  std::string name = absl::StrCat(kFallbackKey, ":");
  for (int word = 0; word < 4; ++word) absl::StrAppend(&name, absl::Hex(random(), absl::kZeroPad8));
  return name;
}

// `ACL DRYRUN user argv...`: nothing runs. Its refusals are replies ("This user has no
// permissions to access the 'k' key"), told apart by their last word.
absl::Status DryRun(Connection& conn, absl::string_view user, const WriteProbe& probe,
                    std::string* refusal) {
  std::vector<absl::string_view> argv = {"ACL", "DRYRUN", user};
  for (const std::string& arg : probe.argv) argv.push_back(arg);
  absl::StatusOr<Reply> reply = conn.Command(absl::MakeConstSpan(argv));
  if (!reply.ok()) {
    // Wrong arguments and the like: the ACL said nothing against the command.
    return conn.broken() ? Annotate(reply.status(), "target") : absl::OkStatus();
  }
  const std::string text(reply->str());
  if (text == "OK" || reply->is_nil()) return absl::OkStatus();
  *refusal = text;
  if (absl::EndsWith(absl::AsciiStrToLower(text), "' key")) {
    if (!probe.key.sampled) return absl::OkStatus();
    return KeyRefused("target", probe.key, probe.argv.front(), text);
  }
  return CommandRefused("target", probe.argv.front(), text);
}

// Whether ACL DRYRUN answers for `user` here; `why` says why not. The capability table says
// whether the server has it (7.0); a renamed command or an ACL that forbids it shows in the
// reply.
bool DryRunWorks(Connection& conn, const ServerFacts& facts, absl::string_view user,
                 std::string* why) {
  if (!facts.caps.acl_dryrun()) {
    *why = absl::StrCat(facts.caps.Describe(), " has no ACL DRYRUN");
    return false;
  }
  absl::StatusOr<Reply> reply = conn.Command({"ACL", "DRYRUN", user, "PING"});
  if (reply.ok()) return true;
  *why = absl::StrCat("ACL DRYRUN is not available to the target user (", reply.status().message(),
                      ")");
  return false;
}

// The target's user, as ACL DRYRUN names it.
std::string TargetUser(const PlanRequest& request) {
  return request.target.user.empty() ? "default" : request.target.user;
}

// How ferry preflight checks the target's writes; `key` becomes the probe key when probes are
// sent. `why`: why none is sent.
absl::StatusOr<WriteCheck> ChooseWriteCheck(const PlanRequest& request, Connection& conn,
                                            const ServerFacts& facts, ProbeKey& key,
                                            std::string* why) {
  if (DryRunWorks(conn, facts, TargetUser(request), why)) return WriteCheck::kDryRun;
  if (request.probe_key.empty()) return WriteCheck::kNone;
  absl::StatusOr<Reply> exists = conn.Command({"EXISTS", request.probe_key});
  if (!exists.ok() && conn.broken()) return Annotate(exists.status(), "target");
  if (!exists.ok() || exists->integer() != 0) {
    *why = absl::StrCat(
        *why, ", and the probe key '", absl::CHexEscape(request.probe_key), "' ",
        exists.ok() ? "exists on the target (give a name no key has)"
                    : absl::StrCat("cannot be read there (", exists.status().message(), ")"));
    return WriteCheck::kNone;
  }
  // Not a key the copy touches: its commands are checked, not the ACL's key patterns.
  key = ProbeKey{request.probe_key, false};
  return WriteCheck::kProbe;
}

// `probe` sent as it is (a form that changes nothing).
absl::Status SendProbe(Connection& conn, const WriteProbe& probe, std::string* refusal) {
  std::vector<absl::string_view> argv(probe.argv.begin(), probe.argv.end());
  return ProbeCommand(conn, "target", &probe.key, absl::MakeConstSpan(argv), nullptr, refusal);
}

// A refused RESTORE (keys then go type by type) or refused temporary keys (big keys and typed
// copies fail) change the copy path rather than stop the job: kept in `target` for
// CheckCopyPath. True when `status` was such a refusal.
bool KeepPathRefusal(const WriteProbe& probe, const absl::Status& status,
                     const std::string& refusal, Deployment& target) {
  if (status.code() != absl::StatusCode::kPermissionDenied) return false;
  if (probe.role == WriteProbe::kTempKey) {
    if (target.temp_key_refusal.empty()) target.temp_key_refusal = std::string(status.message());
    return true;
  }
  if (probe.role == WriteProbe::kRestore &&
      !absl::StrContains(status.message(), "may not access key")) {
    target.restore_refusal = refusal;  // The server's own words, without kNeeded.
    return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<ProbeKey> SampleKey(Connection& conn, absl::string_view match, uint64_t max_bytes) {
  std::string cursor = "0";
  for (int round = 0; round < kSampleScans; ++round) {
    std::vector<absl::string_view> argv = {"SCAN", cursor, "COUNT", "100"};
    if (!match.empty()) argv.insert(argv.end(), {"MATCH", match});
    FERRY_ASSIGN_OR_RETURN(Reply reply, conn.Command(absl::MakeConstSpan(argv)));
    if (!reply.is_array() || reply.size() != 2) break;
    const redis::ReplyView keys = reply.element(1);
    for (size_t i = 0; i < keys.size(); ++i) {
      absl::StatusOr<Reply> usage = conn.Command({"MEMORY", "USAGE", keys.element(i).str()});
      if (!usage.ok() && conn.broken()) return usage.status();
      // Refused (or gone): the key's size is unknown; it is the probe all the same.
      if (!usage.ok() || usage->is_nil() || usage->integer() < 0 ||
          static_cast<uint64_t>(usage->integer()) <= max_bytes) {
        return ProbeKey{std::string(keys.element(i).str()), true};
      }
    }
    cursor = std::string(reply.element(0).str());
    if (cursor == "0") break;
  }
  return ProbeKey{std::string(kFallbackKey), false};
}

absl::StatusOr<ProbeKey> ProbeReads(const PlanRequest& request, Connection& conn,
                                    const redis::Capabilities& caps, absl::string_view side,
                                    bool mget, Findings& findings) {
  absl::Status scan = ProbeCommand(conn, side, nullptr, {"SCAN", "0", "COUNT", "1"});
  FERRY_RETURN_IF_ERROR(Record(findings, scan));
  ProbeKey key{std::string(kFallbackKey), false};
  if (!scan.ok()) {
    if (findings.Stop()) return key;
  } else {
    absl::StatusOr<ProbeKey> sampled = SampleKey(conn, request.match, request.big_key_bytes);
    if (!sampled.ok()) return Annotate(sampled.status(), side);
    key = *std::move(sampled);
  }
  FERRY_RETURN_IF_ERROR(Record(findings, ProbeCommand(conn, side, &key, {"PTTL", key.name})));
  if (findings.Stop()) return key;
  Reply dump;
  FERRY_RETURN_IF_ERROR(
      Record(findings, ProbeCommand(conn, side, &key, {"DUMP", key.name}, &dump)));
  if (findings.Stop()) return key;
  // What the target will be asked to read: this source's payload version.
  if (key.sampled && !dump.is_nil() && !dump.is_error() && !dump.str().empty()) {
    key.payload_version = redis::PayloadVersion(dump.str()).value_or(-1);
  }
  if (mget) {
    FERRY_RETURN_IF_ERROR(Record(findings, ProbeCommand(conn, side, &key, {"MGET", key.name})));
  }
  if (findings.Stop()) return key;
  const absl::Status type = ProbeCommand(conn, side, &key, {"TYPE", key.name});
  const bool every_key =
      request.typed_only || request.verify || (!request.type.empty() && !caps.scan_type());
  if (type.code() != absl::StatusCode::kPermissionDenied || every_key) {
    FERRY_RETURN_IF_ERROR(Record(findings, type));
  } else {
    findings.Warning(check::kPermissions,
                     absl::StrCat(type.message(),
                                  ": keys over --big-key-bytes, streams read type by type and "
                                  "values a target cannot RESTORE would fail"));
  }
  return key;
}

absl::Status ProbeWrites(const PlanRequest& request, Connection& conn, absl::string_view sample_key,
                         Deployment& target, Findings& findings) {
  ProbeKey key{std::string(kFallbackKey), false};
  if (!sample_key.empty()) key = ProbeKey{std::string(sample_key), true};
  WriteCheck mode = WriteCheck::kProbe;
  std::string why;
  if (request.no_writes) {
    FERRY_ASSIGN_OR_RETURN(mode, ChooseWriteCheck(request, conn, target.seed, key, &why));
  }
  // A job's DEL names a key nobody has; preflight's, the probe key it found absent (or, asked
  // with ACL DRYRUN, the key the copy touches).
  const std::string del_key = request.no_writes ? key.name : UnusedKey();
  std::vector<WriteProbe> probes = WriteProbes(request, key, del_key);
  if (mode == WriteCheck::kNone) {
    target.writes_unchecked = true;
    findings.Warning(check::kPermissions,
                     absl::StrCat("the target's write commands (", CommandsOf(probes),
                                  ") are not checked: ", why,
                                  "; preflight writes nothing (give --probe-key to check)"));
    return absl::OkStatus();
  }
  for (const WriteProbe& probe : probes) {
    std::string refusal;
    const absl::Status status = mode == WriteCheck::kDryRun
                                    ? DryRun(conn, TargetUser(request), probe, &refusal)
                                    : SendProbe(conn, probe, &refusal);
    if (KeepPathRefusal(probe, status, refusal, target)) continue;
    FERRY_RETURN_IF_ERROR(Record(findings, status));
    if (findings.Stop()) return absl::OkStatus();
  }
  if (request.no_writes) {
    target.write_check =
        absl::StrCat("the target's write commands (", CommandsOf(probes), ") were checked ",
                     mode == WriteCheck::kDryRun
                         ? absl::StrCat("with ACL DRYRUN for user '", TargetUser(request), "'")
                         : absl::StrCat("on the probe key '", absl::CHexEscape(request.probe_key),
                                        "', each in a form that fails after the ACL "
                                        "check (so not the key patterns of the keys "
                                        "copied)"),
                     ": nothing was written");
  }
  return absl::OkStatus();
}

}  // namespace ferry::server
