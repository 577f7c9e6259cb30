#pragma once

// The verify side of a shard (verify jobs, DESIGN.md "Verification"): each batch of keys the
// reader found is compared with the other side; nothing is written anywhere.
//
// - Forward shards walk the job's source. A key is a difference when the target lacks it, holds
//   another type, another length (quick mode) or value (full mode: DUMP payloads, compared by
//   content where the bytes differ; big keys in pages, value_compare.h), or a TTL longer than the
//   source's, shorter beyond the tolerance, added or removed.
// - Reverse shards walk the job's target: a key the source lacks is extra.
//
// Rescan passes of live jobs run the same comparison in fix mode (VerifySides.fix): what differs
// is made equal instead of reported.
//
// A key that differs is read again on both sides after a pause, and again while its source value
// keeps changing (up to VerifyOptions.max_rechecks), so a source written to during the check, or a
// target that catches up, gives no false report. A key that vanished from the walked side, or
// whose TTL ran out meanwhile, is no difference. Differences go to callbacks.on_failed_key with
// their kind as the reason, never a value.

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/copier.h"
#include "agent/expiry.h"
#include "agent/shard_reader.h"
#include "agent/side_thread.h"
#include "common/redis/capabilities.h"
#include "common/redis/router.h"

namespace ferry::agent {

class KeySync;

// The two deployments a verify shard compares.
struct VerifySides {
  redis::Router* walked = nullptr;  // The side the shard walks (forward: the job's source).
  redis::Router* other = nullptr;
  // Rescan passes of live jobs (compare and fix): set for forward shards, where each key that
  // differs is copied again from the source as it is now (or deleted from the target when the
  // source lost it) instead of being reported. Reverse shards in fix mode (`fix_extras`) delete
  // the target keys the source lacks from the walked side.
  KeySync* fix = nullptr;
  bool fix_extras = false;
  redis::Capabilities walked_caps = redis::Capabilities::ForVersion({4, 0});
  redis::Capabilities other_caps = redis::Capabilities::ForVersion({4, 0});
};

// Compares batches and checkpoints after each. Runs on the copying thread only.
class ShardVerifier : public BatchSink {
 public:
  // `options.verify` must be set. `checkpoint` is updated after each batch and passed to
  // callbacks.on_checkpoint.
  ShardVerifier(const ShardSpec& spec, const CopyOptions& options, VerifySides sides,
                Checkpoint& checkpoint, const CopyCallbacks& callbacks);

  // Transport and fatal errors return before the checkpoint (the batch is checked again on
  // resume); keys that cannot be compared are counted failed with the reason.
  absl::Status Write(const Batch& batch) override;

  // What one check of one key found.
  // kPresent: a reverse shard's key the source has too (its value is a forward shard's
  // business).
  enum class Kind {
    kEqual,
    kPresent,
    kVanished,
    kExpired,
    kMissing,
    kExtra,
    kType,
    kValue,
    kTtl,
    kError
  };
  struct Verdict {
    Kind kind = Kind::kEqual;
    std::string detail;  // For differences and errors; never a value.
    // The walked side's state (type, length or value digest, TTL set or not): when it differs
    // between two checks, the key was being written to.
    std::string fingerprint;
  };

 private:
  // One side's view of one key.
  struct Look {
    std::string type;  // TYPE's answer ("none": absent); empty while unknown.
    // Quick mode, the other side's type, asked with its length command instead of TYPE.
    const std::string* guessed_type = nullptr;
    int64_t pttl = -1;    // PTTL: -1 no TTL (or TTLs not read), -2 absent.
    int64_t length = -1;  // STRLEN of a string; quick mode: the type's length command.
    int64_t size = -1;    // Full mode: bytes (MEMORY USAGE, a string's length); -1 unknown.
    // Full mode, values not above --big-key-bytes: a string's bytes (GET), else its DUMP.
    std::optional<redis::Reply> value;
    absl::Time sent, received;  // When the round that read pttl went and came back.
    std::string error;          // A per-key error reply, if any.
  };
  // What a reply fills in of a Look.
  enum class Field { kPttl, kStrlen, kType, kSize, kLength, kValue, kInfo, kGuessedLength };
  static const char* FieldCommand(Field field);

  // `again`: a look again at keys that differed.
  absl::StatusOr<std::vector<Verdict>> Check(const std::vector<absl::string_view>& keys,
                                             bool again);
  // Without `read_ttls`, `no_ttl` says whether INFO proved that no key read had a TTL.
  absl::StatusOr<std::vector<Verdict>> CheckForward(const std::vector<absl::string_view>& keys,
                                                    bool read_ttls, bool* no_ttl);
  absl::StatusOr<std::vector<Verdict>> CheckReverse(const std::vector<absl::string_view>& keys,
                                                    bool again);
  // PTTL (without `read_ttls`: INFO of database `db` around the first round instead, and
  // `no_ttl` set when it proves no key had a TTL) and what tells type and size: STRLEN where the
  // shard holds strings, then TYPE (and MEMORY USAGE in full mode) for the others. With
  // `types_from` (quick mode, the other side's looks), each key's length is asked with the
  // command of the type the other side holds, and TYPE only where that fails.
  absl::Status LookUp(redis::Router& side, absl::string_view name, int db,
                      const std::vector<absl::string_view>& keys, bool read_ttls,
                      std::vector<Look>& looks, bool* no_ttl,
                      const std::vector<Look>* types_from = nullptr);
  // The second round on one side: lengths (quick) or values (GET, DUMP) of the keys `want`
  // marks.
  absl::Status ReadValues(redis::Router& side, absl::string_view name,
                          const std::vector<absl::string_view>& keys, const std::vector<bool>& want,
                          std::vector<Look>& looks);
  // Executes what `side` holds, one queued command per entry of `asked` (the key's index and
  // what its reply fills in), into `looks`; clears `asked`.
  // kInfo replies go to `info`, in order.
  absl::Status ReadReplies(redis::Router& side, absl::string_view name,
                           std::vector<std::pair<size_t, Field>>& asked, std::vector<Look>& looks,
                           std::vector<redis::Reply>* info);
  // The verdict on one key, with the walked side's fingerprint when it is a difference.
  absl::StatusOr<Verdict> Compare(absl::string_view key, Look& walked, Look& other);
  absl::StatusOr<Verdict> Judge(absl::string_view key, Look& walked, Look& other);
  std::optional<Verdict> CompareTtl(const Look& walked, const Look& other) const;
  // Checks `keys`, then checks the ones that differ again until they agree, stop changing on
  // the walked side, or max_rechecks is reached.
  absl::StatusOr<std::vector<Verdict>> CheckWithRechecks(
      const std::vector<absl::string_view>& keys);
  // Adds the verdict to its counter in `delta`; a difference or an error also goes to
  // callbacks.on_failed_key with its kind as the reason.
  void Count(absl::string_view key, const Verdict& verdict, ferry::v1::Counters& delta);
  static bool IsDifference(Kind kind);
  bool fixing() const { return sides_.fix != nullptr || sides_.fix_extras; }
  // Fix mode (shard_verifier_fix.cc): equal keys count as verified; the others are made equal
  // (copied, or deleted as vanished); keys that could not be compared are reported as in a
  // verify job.
  absl::Status Fix(const Batch& batch, const std::vector<Verdict>& verdicts,
                   ferry::v1::Counters& delta);
  absl::Status DeleteExtras(const std::vector<absl::string_view>& extras,
                            ferry::v1::Counters& delta);
  // OK for a per-key error (recorded on the key); the status for any other, a redirect that
  // outlived the router's retries as UNAVAILABLE.
  static absl::Status FatalUnlessPerKey(const absl::Status& status);

  const ShardSpec& spec_;
  const CopyOptions& options_;
  const VerifyOptions verify_;
  VerifySides sides_;
  Checkpoint& checkpoint_;
  const CopyCallbacks& callbacks_;
  // The other side's reads, while this thread reads the walked side.
  SideThread other_side_;
  // Both sides' reads run at once (other_side_): set from either thread.
  std::atomic<bool> memory_usage_ok_{true};
  // Both sides standalone and no TTL seen yet: PTTL is not read (Check).
  bool ttl_free_;
  // The last batch held mostly strings: STRLEN first (LookUp).
  bool strings_first_ = true;
};

}  // namespace ferry::agent
