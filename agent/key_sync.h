#pragma once

// Copies named keys from the source to the target as they are when read: live watches (their
// dirty keys) and rescan passes (the keys that differ) use it. Each key is read the way a
// shard's batch is (ShardReader::ReadKeys: probe, TTL and DUMP, or type by type where the target
// needs it, big keys in pages) and written with REPLACE and its TTL, never extended
// (ShardWriter); a key the source no longer has is deleted on the target. With a --type filter a
// key of another type is left alone on the target, unless the target's key has the filter's
// type (the key changed type away from it on the source): that one is deleted.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/copier.h"
#include "agent/copy_target.h"
#include "agent/shard_reader.h"
#include "agent/shard_writer.h"
#include "common/redis/capabilities.h"
#include "common/redis/connection.h"
#include "common/redis/endpoint.h"

namespace ferry::agent {

// Not thread-safe: one thread syncs.
class KeySync {
 public:
  // `spec`, `target` and `callbacks` must outlive this. `options` are the shard's; the copy
  // always replaces (and never verifies). Failed keys go to callbacks.on_failed_key.
  KeySync(const ShardSpec& spec, const CopyOptions& options, const Target& target,
          const CopyCallbacks& callbacks);
  KeySync(const KeySync&) = delete;
  KeySync& operator=(const KeySync&) = delete;

  // What one Sync did: counters as a copy counts them (copied; vanished and expired are deleted
  // on the target), and the slots of keys `node` does not serve (cluster; left unread).
  struct Result {
    ferry::v1::Counters delta;
    std::vector<int> moved_slots;
    uint64_t deleted() const { return delta.vanished() + delta.expired(); }
  };
  // Reads `keys` from `node` (its own connection, kept while it works; `replica`: READONLY)
  // and writes them. Transport and fatal errors are returned (some keys may be written).
  absl::StatusOr<Result> Sync(const redis::Endpoint& node, bool replica,
                              const std::vector<std::string>& keys);

 private:
  // The reading side for one node.
  struct Source {
    std::optional<redis::Connection> connection;
    redis::Capabilities caps = redis::Capabilities::ForVersion({4, 0});
    std::unique_ptr<BatchQueue> queue;  // Unused: ShardReader wants one.
    std::unique_ptr<ShardReader> reader;
  };
  absl::Status OpenSource(const redis::Endpoint& node, bool replica);
  // With a --type filter: the keys to read (the filter's type, or gone), and into `retyped`
  // those of another type on the source.
  absl::StatusOr<std::vector<std::string>> FilterByType(const std::vector<std::string>& keys,
                                                        std::vector<std::string>& retyped);
  // Deletes the keys of `retyped` whose target key has the filter's type.
  absl::Status DeleteRetyped(const std::vector<std::string>& retyped, Result& result);

  const ShardSpec& spec_;
  const CopyOptions options_;  // The shard's, replacing, without verify.
  const Target& target_;
  CopyCallbacks writer_callbacks_;  // on_failed_key only: the caller reports progress.
  Checkpoint scratch_;              // The writer's counters of the current Sync.
  ShardWriter writer_;
  Source source_;
};

}  // namespace ferry::agent
