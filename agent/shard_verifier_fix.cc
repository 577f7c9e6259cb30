// Fix mode of ShardVerifier (shard_verifier.h): the rescan passes of live jobs, after a gap in
// the keyspace notifications. Only keys that differ are written, so a rescan of a converged
// target writes nothing.

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/key_sync.h"
#include "agent/shard_verifier.h"
#include "common/base/status_macros.h"
#include "common/redis/errors.h"
#include "proto/wire/counters.h"

namespace ferry::agent {

absl::Status ShardVerifier::Fix(const Batch& batch, const std::vector<Verdict>& verdicts,
                                ferry::v1::Counters& delta) {
  std::vector<std::string> differing;     // Forward: copied again (or deleted).
  std::vector<absl::string_view> extras;  // Reverse: deleted from the job's target.
  for (size_t i = 0; i < batch.keys.size(); ++i) {
    const Verdict& verdict = verdicts[i];
    switch (verdict.kind) {
      case Kind::kEqual:
      case Kind::kPresent:
        delta.set_verified(delta.verified() + 1);
        break;
      case Kind::kExpired:
        delta.set_expired(delta.expired() + 1);
        break;
      case Kind::kError:
        Count(batch.keys[i], verdict, delta);  // Reported: it could not be compared.
        break;
      case Kind::kExtra:
        extras.push_back(batch.keys[i]);
        break;
      case Kind::kVanished:
        // Forward: gone from the source since SCAN listed it; the target may still hold it.
        if (spec_.reverse) {
          delta.set_vanished(delta.vanished() + 1);
        } else {
          differing.emplace_back(batch.keys[i]);
        }
        break;
      default:  // Missing, type, value or TTL.
        differing.emplace_back(batch.keys[i]);
    }
  }
  if (!extras.empty()) FERRY_RETURN_IF_ERROR(DeleteExtras(extras, delta));
  if (differing.empty()) return absl::OkStatus();
  if (sides_.fix == nullptr || batch.source == nullptr) {
    return absl::InternalError("rescan: keys differ but nothing copies them");
  }
  FERRY_ASSIGN_OR_RETURN(KeySync::Result fixed,
                         sides_.fix->Sync(*batch.source, batch.replica, differing));
  if (!fixed.moved_slots.empty()) {
    // The walk meets them again from their new owner after a retry.
    return absl::UnavailableError("rescan: source slots moved while keys were fixed");
  }
  fixed.delta.clear_scanned();  // Counted once, by this batch.
  wire::AddCounters(delta, fixed.delta);
  return absl::OkStatus();
}

absl::Status ShardVerifier::DeleteExtras(const std::vector<absl::string_view>& extras,
                                         ferry::v1::Counters& delta) {
  // The walked side of a reverse shard is the job's target.
  for (absl::string_view key : extras) sides_.walked->Add({"DEL", key});
  FERRY_ASSIGN_OR_RETURN(std::vector<redis::Reply> replies, sides_.walked->Execute());
  for (size_t i = 0; i < replies.size(); ++i) {
    if (replies[i].is_error()) {
      absl::Status status = ReplyStatus("target", "DEL", replies[i]);
      FERRY_RETURN_IF_ERROR(FatalUnlessPerKey(status));
      Count(extras[i], {Kind::kError, std::string(status.message()), ""}, delta);
      continue;
    }
    delta.set_vanished(delta.vanished() + 1);
  }
  return absl::OkStatus();
}

}  // namespace ferry::agent
