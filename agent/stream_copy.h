#pragma once

// The parts of ValueCopier (value_copy.h) that its per-type page copiers share, and streams, the
// one type with more to it than its elements: the stream's counters, consumer groups, consumers
// and pending entries. One set of command builders serves both ways a stream is written: page by
// page (CopyStream) and whole from one XINFO STREAM FULL reply (AppendStreamRebuild).

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "agent/expiry.h"
#include "agent/value_copy.h"
#include "common/redis/capabilities.h"
#include "common/redis/connection.h"
#include "common/redis/router.h"

namespace ferry::agent {

// One key being copied page by page into its temporary key `tmp`. Not thread-safe.
struct KeyPages {
  redis::Connection& source;
  const redis::Capabilities& source_caps;
  const std::optional<SourceClock>& clock;
  redis::Router& target;
  const redis::Capabilities& target_caps;
  const ExpiryMapper& expiry;
  const ValueCopyOptions& options;
  absl::string_view key;
  absl::string_view tmp;
  uint64_t bytes = 0;  // Value bytes written to `tmp` so far.
  // Why the key cannot be copied to this target (KeyCopy::kFailed), when a page found out.
  std::optional<std::string> refusal;
  ArgArena arena;  // Arguments of the commands queued on `target`.
  // Streams: pending entries whose stream entry was deleted (XCLAIM cannot claim those), found
  // by an earlier pass over the key. The next pass writes them as entries, claims them and
  // deletes them again.
  std::set<std::pair<uint64_t, uint64_t>> deleted_pending;
  // Set by a pass that found more of those: the key must be copied again.
  bool again = false;

  // Sends one command to the source; an error reply becomes a status naming the command.
  absl::StatusOr<redis::Reply> Read(absl::Span<const absl::string_view> argv);
  absl::StatusOr<redis::Reply> Read(std::initializer_list<absl::string_view> argv) {
    return Read(absl::MakeConstSpan(argv.begin(), argv.size()));
  }
  // Executes what is queued on the target and clears `arena`. The first error reply becomes a
  // status naming `what` (a redirect that outlived the router's retries: UNAVAILABLE).
  absl::StatusOr<std::vector<redis::Reply>> Write(absl::string_view what);
  // COUNT for the next page, after one of `elements` elements and `page_bytes` bytes: pages
  // stop growing past options.chunk_bytes.
  int NextCount(size_t elements, uint64_t page_bytes) const;
};

// What XINFO STREAM says of a stream, as arguments for the target.
struct StreamInfo {
  std::string last_id;  // last-generated-id.
  // Empty when the source has no stream counters (capabilities.h stream_counters).
  std::string entries_added;
  std::string max_deleted_id;
};

// From an XINFO STREAM reply.
StreamInfo ParseStreamInfo(redis::ReplyView xinfo);

// The value of `name` in a flat field/value array (XINFO replies); a nil view when absent.
redis::ReplyView FieldValue(redis::ReplyView map, absl::string_view name);
// The same as text; nullopt when it is absent or nil.
std::optional<std::string> FieldText(redis::ReplyView map, absl::string_view name);

// The start of an XRANGE/XPENDING range after entry `id` on a server with `caps`: `(id` where
// it takes exclusive ranges, else the next possible id.
std::string RangeStartAfter(const redis::Capabilities& caps, absl::string_view id);

// Copies the stream `pages.key` into `pages.tmp` (which must not exist): its entries up to
// `info.last_id`, its last id and counters, then each consumer group with its consumers and
// pending entries. A pending entry whose stream entry was deleted is added to
// `pages.deleted_pending` and sets `pages.again`.
absl::Status CopyStream(KeyPages& pages, const StreamInfo& info);

// Queues on `target` the commands that rebuild in `dest` (which must not exist) the stream that
// `full` describes: the reply of XINFO STREAM FULL COUNT 0 (every entry and every pending
// entry; fields are found by name, so every version's layout reads), the batch path's whole
// read of a stream (AppendWholeRead). The commands are those CopyStream sends, in one pass:
// XADD of each entry with its id, XSETID (counters gated by `options`), XGROUP CREATE (with
// ENTRIESREAD), CREATECONSUMER, XCLAIM ... IDLE RETRYCOUNT FORCE JUSTID per pending entry (idle
// from options.source_now_ms), and for pending entries whose entry was deleted an entry written
// at that id in order, claimed, deleted again, then XSETID once more. The router keeps views of
// `full`, `dest` and `arena`. Returns the number of commands queued (never 0).
size_t AppendStreamRebuild(redis::Router& target, absl::string_view dest, redis::ReplyView full,
                           const RebuildOptions& options, ArgArena& arena);

// The bytes of the entries' fields and values in an XINFO STREAM FULL reply: what a rebuild of
// it writes.
uint64_t StreamEntryBytes(redis::ReplyView full);

// What a conflict check compares of stream `key` on `target`: entries, last id, counters,
// groups and pending entries with their owners and delivery counts, but not delivery times or
// consumers' last-seen times (a rebuilt stream has its own). nullopt when it is unreadable (gone
// included) or has `max_elements` entries or pending entries of a group or more: too big to
// compare. Executes what is queued on `target`, which must be nothing else.
absl::StatusOr<std::optional<std::string>> StreamFingerprint(redis::Router& target,
                                                             absl::string_view key,
                                                             int max_elements);

}  // namespace ferry::agent
