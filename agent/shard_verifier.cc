#include "agent/shard_verifier.h"

#include <algorithm>
#include <functional>
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

std::string Millis(int64_t ms) { return absl::StrCat(ms, " ms"); }

// How a TTL reads in a difference: "none" or "1500 ms".
std::string TtlText(int64_t pttl) { return pttl < 0 ? "none" : Millis(pttl); }

}  // namespace

absl::Status ShardVerifier::FatalUnlessPerKey(const absl::Status& status) {
  const redis::ErrorClass c = redis::Classify(status);
  if (c == redis::ErrorClass::kPerKey) return absl::OkStatus();
  if (c == redis::ErrorClass::kRedirect) {
    return absl::UnavailableError(absl::StrCat(status.message(), " (slots kept moving)"));
  }
  return status;
}

ShardVerifier::ShardVerifier(const ShardSpec& spec, const CopyOptions& options, VerifySides sides,
                             Checkpoint& checkpoint, const CopyCallbacks& callbacks)
    : spec_(spec),
      options_(options),
      verify_(*options.verify),
      sides_(std::move(sides)),
      checkpoint_(checkpoint),
      callbacks_(callbacks),
      ttl_free_(!spec.reverse && !sides_.walked->cluster() && !sides_.other->cluster()) {}

absl::Status ShardVerifier::Write(const Batch& batch) {
  ferry::v1::Counters delta;
  delta.set_scanned(batch.keys.size());
  if (!batch.keys.empty()) {
    FERRY_ASSIGN_OR_RETURN(std::vector<Verdict> verdicts, CheckWithRechecks(batch.keys));
    if (fixing()) {
      FERRY_RETURN_IF_ERROR(Fix(batch, verdicts, delta));
    } else {
      for (size_t i = 0; i < batch.keys.size(); ++i) Count(batch.keys[i], verdicts[i], delta);
    }
  }
  CheckpointAfter(batch, delta, checkpoint_, callbacks_);
  return absl::OkStatus();
}

void ShardVerifier::Count(absl::string_view key, const Verdict& verdict,
                          ferry::v1::Counters& delta) {
  using Counters = ferry::v1::Counters;
  struct Tally {
    uint64_t (Counters::*get)() const;  // Null: counted nowhere (kPresent).
    void (Counters::*set)(uint64_t);
    const char* reason;  // Null: no difference. Else the reason's start, before the detail.
  };
  // By Kind, in its order.
  static constexpr Tally kTallies[] = {
      {&Counters::verified, &Counters::set_verified, nullptr},
      {nullptr, nullptr, nullptr},
      {&Counters::vanished, &Counters::set_vanished, nullptr},
      {&Counters::expired, &Counters::set_expired, nullptr},
      {&Counters::missing, &Counters::set_missing, "missing on the target"},
      {&Counters::extra, &Counters::set_extra, "extra on the target (the source has no such key)"},
      {&Counters::type_differs, &Counters::set_type_differs, "type differs: "},
      {&Counters::value_differs, &Counters::set_value_differs, "value differs: "},
      {&Counters::ttl_differs, &Counters::set_ttl_differs, "TTL differs: "},
      {&Counters::failed, &Counters::set_failed, "could not be compared: "},
  };
  const Tally& tally = kTallies[static_cast<int>(verdict.kind)];
  if (tally.get != nullptr) (delta.*tally.set)((delta.*tally.get)() + 1);
  if (tally.reason == nullptr || !callbacks_.on_failed_key) return;
  callbacks_.on_failed_key(std::string(key), absl::StrCat(tally.reason, verdict.detail));
}

bool ShardVerifier::IsDifference(Kind kind) {
  return kind != Kind::kEqual && kind != Kind::kPresent && kind != Kind::kVanished &&
         kind != Kind::kExpired;
}

absl::StatusOr<std::vector<ShardVerifier::Verdict>> ShardVerifier::CheckWithRechecks(
    const std::vector<absl::string_view>& keys) {
  FERRY_ASSIGN_OR_RETURN(std::vector<Verdict> verdicts, Check(keys, /*again=*/false));
  const auto differs = [](const Verdict& v) { return IsDifference(v.kind); };
  std::vector<size_t> suspects;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (differs(verdicts[i])) suspects.push_back(i);
  }
  std::vector<bool> changing(keys.size(), false);  // At the last look.
  absl::Duration pause = kFirstRecheckPause;
  for (int round = 0; round < verify_.max_rechecks && !suspects.empty(); ++round) {
    absl::SleepFor(pause);
    pause *= 3;
    std::vector<absl::string_view> again_keys;
    for (size_t i : suspects) again_keys.push_back(keys[i]);
    FERRY_ASSIGN_OR_RETURN(std::vector<Verdict> again, Check(again_keys, /*again=*/true));
    std::vector<size_t> next;
    // A few differences in a batch may be a target catching up with its source (a dual
    // write, live sync): they get a second look after the longer pause whatever the source
    // does. Otherwise, and after that, only keys still changing on the walked side do.
    const bool few = round == 0 && suspects.size() * 10 <= keys.size();
    for (size_t j = 0; j < suspects.size(); ++j) {
      const size_t i = suspects[j];
      // Still different and the walked side moved meanwhile: it is being written to; look
      // again later. Otherwise this look is the answer.
      changing[i] = differs(again[j]) && again[j].fingerprint != verdicts[i].fingerprint;
      if (differs(again[j]) && (few || changing[i])) next.push_back(i);
      verdicts[i] = std::move(again[j]);
    }
    suspects = std::move(next);
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!changing[i] || !differs(verdicts[i])) continue;
    absl::StrAppend(&verdicts[i].detail, " (the key kept changing on the ",
                    spec_.reverse ? "target" : "source", " while it was compared)");
  }
  return verdicts;
}

absl::StatusOr<std::vector<ShardVerifier::Verdict>> ShardVerifier::Check(
    const std::vector<absl::string_view>& keys, bool again) {
  if (spec_.reverse) return CheckReverse(keys, again);
  // While neither database holds a key with a TTL, PTTL is skipped: INFO before and after the
  // reads proves no key read had one (expiry.h NoTtlBetween), else the keys are read again with
  // PTTL, and PTTL is read from then on.
  if (ttl_free_) {
    bool no_ttl = false;
    FERRY_ASSIGN_OR_RETURN(std::vector<Verdict> verdicts,
                           CheckForward(keys, /*read_ttls=*/false, &no_ttl));
    if (no_ttl) return verdicts;
    ttl_free_ = false;
  }
  return CheckForward(keys, /*read_ttls=*/true, nullptr);
}

absl::StatusOr<std::vector<ShardVerifier::Verdict>> ShardVerifier::CheckForward(
    const std::vector<absl::string_view>& keys, bool read_ttls, bool* no_ttl) {
  std::vector<Look> walked(keys.size()), other(keys.size());
  bool walked_no_ttl = false, other_no_ttl = false;
  const auto look_up_walked = [&](const std::vector<Look>* types_from) {
    return LookUp(*sides_.walked, "source", spec_.source_db, keys, read_ttls, walked,
                  &walked_no_ttl, types_from);
  };
  const auto look_up_other = [&] {
    return LookUp(*sides_.other, "target", spec_.target_db, keys, read_ttls, other, &other_no_ttl);
  };
  if (!verify_.full && !strings_first_) {
    // Types other than strings, quick mode: the target's TYPEs first, then the source asked
    // each key's length by the target's type (a WRONGTYPE, rare, is followed by TYPE) while the
    // target is asked its lengths. The same two rounds as reading both sides at once, and the
    // source, the side to spare, answers one command less per key.
    FERRY_RETURN_IF_ERROR(look_up_other());
    std::vector<bool> lengths(keys.size(), false);
    for (size_t i = 0; i < keys.size(); ++i) {
      lengths[i] =
          other[i].error.empty() && other[i].length < 0 && !LengthCommand(other[i].type).empty();
    }
    FERRY_RETURN_IF_ERROR(other_side_.RunBoth(
        [&] { return look_up_walked(&other); },
        [&] { return ReadValues(*sides_.other, "target", keys, lengths, other); }));
  } else {
    FERRY_RETURN_IF_ERROR(
        other_side_.RunBoth([&] { return look_up_walked(nullptr); }, look_up_other));
  }
  if (no_ttl != nullptr) *no_ttl = walked_no_ttl && other_no_ttl;
  // The second round only for keys on both sides with one type, where a length or a value not
  // too big tells more.
  std::vector<bool> want(keys.size(), false);
  size_t strings = 0, wanted = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    const Look& w = walked[i];
    const Look& o = other[i];
    strings += w.type == "string" ? 1 : 0;
    if (!w.error.empty() || !o.error.empty() || w.type == "none" || w.type != o.type) continue;
    if (verify_.full) {
      const uint64_t limit = options_.big_key_bytes;
      want[i] = w.size >= 0 && o.size >= 0 && static_cast<uint64_t>(w.size) <= limit &&
                static_cast<uint64_t>(o.size) <= limit;
    } else {
      // STRLEN told a string's length already.
      want[i] = !LengthCommand(w.type).empty() && (w.length < 0 || o.length < 0);
    }
    wanted += want[i] ? 1 : 0;
  }
  // What this batch held tells the next which first command is cheaper.
  strings_first_ = strings * 10 >= keys.size() * 9;
  if (wanted > 0) {
    FERRY_RETURN_IF_ERROR(other_side_.RunBoth(
        [&] { return ReadValues(*sides_.walked, "source", keys, want, walked); },
        [&] { return ReadValues(*sides_.other, "target", keys, want, other); }));
  }
  std::vector<Verdict> verdicts(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    FERRY_ASSIGN_OR_RETURN(verdicts[i], Compare(keys[i], walked[i], other[i]));
  }
  return verdicts;
}

absl::StatusOr<ShardVerifier::Verdict> ShardVerifier::Compare(absl::string_view key, Look& walked,
                                                              Look& other) {
  FERRY_ASSIGN_OR_RETURN(Verdict verdict, Judge(key, walked, other));
  // Only a difference is looked at again: only then is the walked side's state worth keeping.
  if (IsDifference(verdict.kind)) {
    verdict.fingerprint = absl::StrCat(
        walked.type, ":", walked.length, ":", walked.size, ":", walked.pttl < 0 ? "persist" : "ttl",
        ":", walked.value.has_value() ? absl::Hash<absl::string_view>()(walked.value->str()) : 0,
        verdict.fingerprint);
  }
  return verdict;
}

absl::StatusOr<ShardVerifier::Verdict> ShardVerifier::Judge(absl::string_view key, Look& walked,
                                                            Look& other) {
  Verdict verdict;
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
      verdict.detail = absl::StrCat(walked.type, " of length ", walked.length, " on the source, ",
                                    other.length, " on the target");
      return verdict;
    }
  } else if (walked.type == "string" && walked.value.has_value() && other.value.has_value()) {
    if (walked.value->str() != other.value->str()) {
      verdict.kind = Kind::kValue;
      verdict.detail =
          walked.value->str().size() == other.value->str().size()
              ? absl::StrCat("string: bytes differ (", walked.value->str().size(), " bytes)")
              : absl::StrCat("string: ", walked.value->str().size(), " bytes on the source, ",
                             other.value->str().size(), " on the target");
      return verdict;
    }
  } else if (!walked.value.has_value() || !other.value.has_value() ||
             !SameDumpValue(walked.value->str(), other.value->str())) {
    // Big, or the payloads differ in bytes (another payload version, another encoding, another
    // element order): compared by content, in pages.
    FERRY_ASSIGN_OR_RETURN(ValueDiff diff,
                           CompareValue({sides_.walked, &sides_.walked_caps},
                                        {sides_.other, &sides_.other_caps}, key, walked.type));
    if (diff.type_changed) {
      verdict.kind = Kind::kValue;
      verdict.detail = absl::StrCat(walked.type, " changed while it was compared");
      verdict.fingerprint = ":changing";  // Looked at again.
      return verdict;
    }
    if (!diff.equal) {
      verdict.kind = Kind::kValue;
      verdict.detail = std::move(diff.detail);
      return verdict;
    }
  }
  if (std::optional<Verdict> ttl = CompareTtl(walked, other); ttl.has_value()) return *ttl;
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
    verdict.detail = absl::StrCat("longer on the target: ", Millis(walked.pttl), " on the source, ",
                                  Millis(other.pttl), " on the target");
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
