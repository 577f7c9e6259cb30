#pragma once

// hiredis' redisReader with the bounds it lacks. hiredis 0.14.1 buffers a bulk string until
// all of it has arrived, whatever length its header claims, and allocates an array of any
// element count its header claims: a peer that is not a well-behaved Redis server (a reply
// "claiming" 4 GB, a line that never ends, an array of a billion elements) made ferry grow
// without limit. This reader refuses, before allocating, any reply that would hold more than
// `max_reply_bytes` (its bytes plus kElementOverheadBytes per element), and any line longer
// than kMaxLineBytes, with a clear error. Not thread-safe.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct redisReader;
struct redisReply;

namespace ferry::redis {

// Redis' own limit on a value (proto-max-bulk-len) is 512 MB unless raised; ferry reads values
// above --big-key-bytes (1 MB by default) in pages, so its replies are far smaller. Twice that
// default leaves room for DUMP payloads of values read whole (--big-key-bytes off) and for a
// server whose limit was raised, and still bounds what a broken peer costs.
inline constexpr uint64_t kDefaultMaxReplyBytes = uint64_t{1} << 30;
// What one element of a reply costs beyond its bytes (a redisReply and its allocation), so
// that an array of a billion tiny elements counts for what it would take.
inline constexpr uint64_t kElementOverheadBytes = 64;
// Status and error lines and the headers of bulks and arrays: Redis writes none longer than a
// few KB.
inline constexpr size_t kMaxLineBytes = 64 << 10;

class ReplyReader {
 public:
  explicit ReplyReader(uint64_t max_reply_bytes = kDefaultMaxReplyBytes);
  ~ReplyReader();
  ReplyReader(const ReplyReader&) = delete;
  ReplyReader& operator=(const ReplyReader&) = delete;

  // Copies `size` bytes in. INTERNAL when out of memory.
  absl::Status Feed(const char* data, size_t size);

  // The next complete reply (owned by the caller: freeReplyObject), or null until more bytes
  // arrive. After an error the stream cannot be resynchronised: every later call fails too.
  // - FAILED_PRECONDITION: the reply would exceed max_reply_bytes (its message says how big
  //   it claimed to be and what the bound is);
  // - UNAVAILABLE: the bytes are not RESP (hiredis' protocol error, or a line longer than
  //   kMaxLineBytes), with a hint when they look like HTTP or TLS.
  absl::StatusOr<redisReply*> Next();

  // The bound for the replies that start after this call (the one being read keeps its own
  // count).
  void set_max_reply_bytes(uint64_t bytes);
  uint64_t max_reply_bytes() const;
  // True once Next() or Feed() failed.
  bool failed() const { return !error_.ok(); }
  // Bytes fed and not yet taken by a complete reply.
  size_t unparsed_bytes() const;

  // What the object functions see (public for them; not part of the API).
  struct Budget;

 private:
  absl::Status CheckUnparsed();

  std::unique_ptr<Budget> budget_;  // Stable address: the reader's privdata points at it.
  redisReader* reader_;
  absl::Status error_;  // Sticky.
};

// A hint for bytes that start a stream that is not RESP: "the peer speaks HTTP ...", "... TLS
// ...", or empty.
std::string ForeignProtocolHint(absl::string_view first_bytes);

}  // namespace ferry::redis
