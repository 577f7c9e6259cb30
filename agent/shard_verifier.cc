#include "agent/shard_verifier.h"

#include <algorithm>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/dump_compare.h"
#include "agent/value_compare.h"
#include "agent/value_copy.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/redis/errors.h"
#include "proto/wire/counters.h"

namespace ferry::agent {
namespace {

using redis::Reply;

// The pause before the first re-check of a batch's differing keys; each later one is 3x longer.
constexpr absl::Duration kFirstRecheckPause = absl::Milliseconds(100);

// An error reply as a status naming the side and the command.
absl::Status SideError(absl::string_view side, absl::string_view command, const Reply& reply) {
  return ReplyStatus(side, command, reply);
}

// OK for a per-key error (recorded on the key); the status for any other.
absl::Status FatalUnlessPerKey(const absl::Status& status) {
  const redis::ErrorClass c = redis::Classify(status);
  if (c == redis::ErrorClass::kPerKey) return absl::OkStatus();
  if (c == redis::ErrorClass::kRedirect) {
    return absl::UnavailableError(absl::StrCat(status.message(), " (slots kept moving)"));
  }
  return status;
}

std::string Millis(int64_t ms) { return absl::StrCat(ms, " ms"); }

// How a TTL reads in a difference: "none" or "1500 ms".
std::string TtlText(int64_t pttl) { return pttl < 0 ? "none" : Millis(pttl); }

}  // namespace

ShardVerifier::ShardVerifier(const ShardSpec& spec, const CopyOptions& options,
                             VerifySides sides, Checkpoint& checkpoint,
                             const CopyCallbacks& callbacks)
    : spec_(spec),
      options_(options),
      verify_(*options.verify),
      sides_(std::move(sides)),
      checkpoint_(checkpoint),
      callbacks_(callbacks) {}

absl::Status ShardVerifier::Write(const Batch& batch) {
  ferry::v1::Counters delta;
  delta.set_scanned(batch.keys.size());
  if (!batch.keys.empty()) {
    FERRY_ASSIGN_OR_RETURN(std::vector<Verdict> verdicts, CheckWithRechecks(batch.keys));
    for (size_t i = 0; i < batch.keys.size(); ++i) Count(batch.keys[i], verdicts[i], delta);
  }
  if (batch.cursor_after.has_value()) checkpoint_.cursor = *batch.cursor_after;
  if (batch.walk_end) checkpoint_.scanned = true;
  for (int slot : batch.moved_slots) checkpoint_.rescan.Add(slot);
  wire::AddCounters(checkpoint_.counters, delta);
  if (callbacks_.on_checkpoint) callbacks_.on_checkpoint(checkpoint_);
  return absl::OkStatus();
}

void ShardVerifier::Count(absl::string_view key, const Verdict& verdict,
                          ferry::v1::Counters& delta) {
  std::string reason;
  switch (verdict.kind) {
    case Kind::kEqual:
      delta.set_verified(delta.verified() + 1);
      return;
    case Kind::kPresent:
      return;
    case Kind::kVanished:
      delta.set_vanished(delta.vanished() + 1);
      return;
    case Kind::kExpired:
      delta.set_expired(delta.expired() + 1);
      return;
    case Kind::kMissing:
      delta.set_missing(delta.missing() + 1);
      reason = "missing on the target";
      break;
    case Kind::kExtra:
      delta.set_extra(delta.extra() + 1);
      reason = "extra on the target (the source has no such key)";
      break;
    case Kind::kType:
      delta.set_type_differs(delta.type_differs() + 1);
      reason = absl::StrCat("type differs: ", verdict.detail);
      break;
    case Kind::kValue:
      delta.set_value_differs(delta.value_differs() + 1);
      reason = absl::StrCat("value differs: ", verdict.detail);
      break;
    case Kind::kTtl:
      delta.set_ttl_differs(delta.ttl_differs() + 1);
      reason = absl::StrCat("TTL differs: ", verdict.detail);
      break;
    case Kind::kError:
      delta.set_failed(delta.failed() + 1);
      reason = absl::StrCat("could not be compared: ", verdict.detail);
      break;
  }
  if (callbacks_.on_failed_key) callbacks_.on_failed_key(std::string(key), reason);
}

absl::StatusOr<std::vector<ShardVerifier::Verdict>> ShardVerifier::CheckWithRechecks(
    const std::vector<absl::string_view>& keys) {
  FERRY_ASSIGN_OR_RETURN(std::vector<Verdict> verdicts, Check(keys));
  const auto differs = [](const Verdict& v) {
    return v.kind != Kind::kEqual && v.kind != Kind::kPresent && v.kind != Kind::kVanished &&
           v.kind != Kind::kExpired;
  };
  std::vector<size_t> suspects;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (differs(verdicts[i])) suspects.push_back(i);
  }
  absl::Duration pause = kFirstRecheckPause;
  for (int round = 0; round < verify_.max_rechecks && !suspects.empty(); ++round) {
    absl::SleepFor(pause);
    pause *= 3;
    std::vector<absl::string_view> again_keys;
    for (size_t i : suspects) again_keys.push_back(keys[i]);
    FERRY_ASSIGN_OR_RETURN(std::vector<Verdict> again, Check(again_keys));
    std::vector<size_t> changing;
    for (size_t j = 0; j < suspects.size(); ++j) {
      Verdict& verdict = verdicts[suspects[j]];
      // Still different and the walked side moved meanwhile: it is being written to; look
      // again later. Otherwise this look is the answer.
      const bool moving = differs(again[j]) && again[j].fingerprint != verdict.fingerprint;
      verdict = std::move(again[j]);
      if (moving) changing.push_back(suspects[j]);
    }
    suspects = std::move(changing);
  }
  for (size_t i : suspects) {
    absl::StrAppend(&verdicts[i].detail, " (the key kept changing on the ",
                    spec_.reverse ? "target" : "source", " while it was compared)");
  }
  return verdicts;
}

absl::StatusOr<std::vector<ShardVerifier::Verdict>> ShardVerifier::Check(
    const std::vector<absl::string_view>& keys) {
  return spec_.reverse ? CheckReverse(keys) : CheckForward(keys);
}

absl::StatusOr<std::vector<ShardVerifier::Verdict>> ShardVerifier::CheckReverse(
    const std::vector<absl::string_view>& keys) {
  // Walked: the job's target; other: its source. Only whether the source has the key counts
  // here (its value is the forward shards' business).
  for (absl::string_view key : keys) sides_.other->Add({"EXISTS", key});
  FERRY_ASSIGN_OR_RETURN(std::vector<Reply> on_source, sides_.other->Execute());
  for (absl::string_view key : keys) sides_.walked->Add({"EXISTS", key});
  FERRY_ASSIGN_OR_RETURN(std::vector<Reply> on_target, sides_.walked->Execute());
  std::vector<Verdict> verdicts(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    for (const auto& [reply, side] : {std::pair<const Reply*, const char*>{&on_source[i], "source"},
                                      {&on_target[i], "target"}}) {
      if (!reply->is_error()) continue;
      const absl::Status status = SideError(side, "EXISTS", *reply);
      FERRY_RETURN_IF_ERROR(FatalUnlessPerKey(status));
      verdicts[i] = {Kind::kError, std::string(status.message()), ""};
    }
    if (verdicts[i].kind == Kind::kError) continue;
    if (on_target[i].integer() == 0) {
      verdicts[i].kind = Kind::kVanished;
    } else {
      verdicts[i].kind = on_source[i].integer() == 0 ? Kind::kExtra : Kind::kPresent;
    }
    verdicts[i].fingerprint = on_target[i].integer() == 0 ? "none" : "exists";
  }
  return verdicts;
}

absl::StatusOr<std::vector<ShardVerifier::Look>> ShardVerifier::LookUp(
    redis::Router& side, absl::string_view name, const std::vector<absl::string_view>& keys) {
  const bool sizes = verify_.full && memory_usage_ok_;
  for (absl::string_view key : keys) {
    side.Add({"TYPE", key});
    side.Add({"PTTL", key});
    if (sizes) side.Add({"MEMORY", "USAGE", key});
  }
  std::vector<Look> looks(keys.size());
  const absl::Time sent = absl::Now();
  FERRY_ASSIGN_OR_RETURN(std::vector<Reply> replies, side.Execute());
  const absl::Time received = absl::Now();
  const size_t per_key = sizes ? 3 : 2;
  for (size_t i = 0; i < keys.size(); ++i) {
    Look& look = looks[i];
    look.sent = sent;
    look.received = received;
    const Reply& type = replies[i * per_key];
    const Reply& pttl = replies[i * per_key + 1];
    for (const auto& [reply, command] :
         {std::pair<const Reply*, const char*>{&type, "TYPE"}, {&pttl, "PTTL"}}) {
      if (!reply->is_error()) continue;
      const absl::Status status = SideError(name, command, *reply);
      FERRY_RETURN_IF_ERROR(FatalUnlessPerKey(status));
      look.error = std::string(status.message());
    }
    if (!look.error.empty()) continue;
    look.type = std::string(type.str());
    look.pttl = pttl.integer();
    if (!sizes) continue;
    const Reply& usage = replies[i * per_key + 2];
    if (!usage.is_error()) {
      look.size = usage.is_nil() ? 0 : usage.integer();
    } else if (SideError(name, "MEMORY USAGE", usage).code() ==
               absl::StatusCode::kPermissionDenied) {
      // Refused: every key is compared in pages, which never reads a big value whole.
      FERRY_LOG(Warning) << "the " << name << " refuses MEMORY USAGE: values are compared in "
                         << "pages, not by DUMP";
      memory_usage_ok_ = false;
    }
  }
  return looks;
}

absl::Status ShardVerifier::ReadValues(redis::Router& side, absl::string_view name,
                                       const std::vector<absl::string_view>& keys,
                                       const std::vector<bool>& want, std::vector<Look>& looks) {
  std::vector<size_t> asked;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!want[i]) continue;
    if (verify_.full) {
      side.Add({"DUMP", keys[i]});
    } else {
      side.Add({LengthCommand(looks[i].type), keys[i]});
    }
    asked.push_back(i);
  }
  if (asked.empty()) return absl::OkStatus();
  FERRY_ASSIGN_OR_RETURN(std::vector<Reply> replies, side.Execute());
  for (size_t j = 0; j < asked.size(); ++j) {
    Look& look = looks[asked[j]];
    Reply& reply = replies[j];
    if (reply.is_error()) {
      const absl::Status status = SideError(name, verify_.full ? "DUMP" : "length", reply);
      FERRY_RETURN_IF_ERROR(FatalUnlessPerKey(status));
      // WRONGTYPE: the key changed type since TYPE; the re-check sees it.
      look.error = std::string(status.message());
    } else if (verify_.full) {
      if (reply.is_nil()) {
        look.type = "none";  // Gone since TYPE.
      } else {
        look.dump = std::move(reply);
      }
    } else {
      look.length = reply.integer();
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ShardVerifier::Verdict>> ShardVerifier::CheckForward(
    const std::vector<absl::string_view>& keys) {
  FERRY_ASSIGN_OR_RETURN(std::vector<Look> walked, LookUp(*sides_.walked, "source", keys));
  FERRY_ASSIGN_OR_RETURN(std::vector<Look> other, LookUp(*sides_.other, "target", keys));
  // The second round only for keys on both sides with one type, where a length or a small
  // value tells more.
  std::vector<bool> want(keys.size(), false);
  for (size_t i = 0; i < keys.size(); ++i) {
    const Look& w = walked[i];
    const Look& o = other[i];
    if (!w.error.empty() || !o.error.empty() || w.type == "none" || w.type != o.type) continue;
    if (verify_.full) {
      const uint64_t limit = options_.big_key_bytes;
      want[i] = w.size >= 0 && o.size >= 0 && static_cast<uint64_t>(w.size) <= limit &&
                static_cast<uint64_t>(o.size) <= limit;
    } else {
      want[i] = !LengthCommand(w.type).empty();
    }
  }
  FERRY_RETURN_IF_ERROR(ReadValues(*sides_.walked, "source", keys, want, walked));
  FERRY_RETURN_IF_ERROR(ReadValues(*sides_.other, "target", keys, want, other));
  std::vector<Verdict> verdicts(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    FERRY_ASSIGN_OR_RETURN(verdicts[i], Compare(keys[i], walked[i], other[i]));
  }
  return verdicts;
}

absl::StatusOr<ShardVerifier::Verdict> ShardVerifier::Compare(absl::string_view key, Look& walked,
                                                              Look& other) {
  Verdict verdict;
  verdict.fingerprint = absl::StrCat(
      walked.type, ":", walked.length, ":", walked.size, ":", walked.pttl < 0 ? "persist" : "ttl",
      ":", walked.dump.has_value() ? absl::Hash<absl::string_view>()(walked.dump->str()) : 0);
  if (!walked.error.empty() || !other.error.empty()) {
    verdict.kind = Kind::kError;
    verdict.detail = walked.error.empty() ? other.error : walked.error;
    return verdict;
  }
  if (walked.type == "none") {
    verdict.kind = Kind::kVanished;
    return verdict;
  }
  if (other.type == "none") {
    // Its TTL may have run out on the target first (ferry may shorten a TTL by the tolerance).
    const int64_t tolerance = absl::ToInt64Milliseconds(verify_.ttl_tolerance);
    verdict.kind = walked.pttl >= 0 && walked.pttl <= tolerance ? Kind::kExpired : Kind::kMissing;
    return verdict;
  }
  if (walked.type != other.type) {
    verdict.kind = Kind::kType;
    verdict.detail = absl::StrCat(walked.type, " on the source, ", other.type, " on the target");
    return verdict;
  }
  if (!verify_.full) {
    if (walked.length != other.length) {
      verdict.kind = Kind::kValue;
      verdict.detail = absl::StrCat(walked.type, " of length ", walked.length,
                                    " on the source, ", other.length, " on the target");
      return verdict;
    }
  } else if (!walked.dump.has_value() || !other.dump.has_value() ||
             !SameDumpValue(walked.dump->str(), other.dump->str())) {
    // Big, or the payloads differ in bytes (another payload version, another encoding, another
    // element order): compared by content, in pages.
    FERRY_ASSIGN_OR_RETURN(
        ValueDiff diff,
        CompareValue({sides_.walked, &sides_.walked_caps}, {sides_.other, &sides_.other_caps}, key,
                     walked.type));
    if (diff.type_changed) {
      verdict.kind = Kind::kValue;
      verdict.detail = absl::StrCat(walked.type, " changed while it was compared");
      verdict.fingerprint += ":changing";  // Looked at again.
      return verdict;
    }
    if (!diff.equal) {
      verdict.kind = Kind::kValue;
      verdict.detail = std::move(diff.detail);
      return verdict;
    }
  }
  if (std::optional<Verdict> ttl = CompareTtl(walked, other); ttl.has_value()) {
    ttl->fingerprint = verdict.fingerprint;
    return *ttl;
  }
  return verdict;
}

// Each expiry is known to lie between (round sent + PTTL) and (round received + PTTL): a target
// expiry later than the latest the source's can be, or earlier than its earliest, by more than
// the tolerance, is a difference.
std::optional<ShardVerifier::Verdict> ShardVerifier::CompareTtl(const Look& walked,
                                                                const Look& other) const {
  Verdict verdict;
  verdict.kind = Kind::kTtl;
  if (walked.pttl < 0 && other.pttl < 0) return std::nullopt;
  if (walked.pttl < 0 || other.pttl < 0) {
    verdict.detail = absl::StrCat(TtlText(walked.pttl), " on the source, ", TtlText(other.pttl),
                                  " on the target");
    return verdict;
  }
  const absl::Time source_earliest = walked.sent + absl::Milliseconds(walked.pttl);
  const absl::Time source_latest = walked.received + absl::Milliseconds(walked.pttl);
  const absl::Time target_earliest = other.sent + absl::Milliseconds(other.pttl);
  const absl::Time target_latest = other.received + absl::Milliseconds(other.pttl);
  if (target_earliest > source_latest + verify_.ttl_tolerance) {
    verdict.detail = absl::StrCat("longer on the target: ", Millis(walked.pttl),
                                  " on the source, ", Millis(other.pttl), " on the target");
    return verdict;
  }
  if (target_latest + verify_.ttl_tolerance < source_earliest) {
    verdict.detail = absl::StrCat("shorter on the target: ", Millis(walked.pttl),
                                  " on the source, ", Millis(other.pttl), " on the target");
    return verdict;
  }
  return std::nullopt;
}

}  // namespace ferry::agent
