#include "common/redis/reply_reader.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace ferry::redis {

// What the reply being read has cost so far, and its bound. Written by the object functions
// below, which hiredis calls from redisReaderGetReply.
struct ReplyReader::Budget {
  uint64_t limit = kDefaultMaxReplyBytes;
  uint64_t used = 0;
  // Set when an object function refused to allocate: what it was asked for, in bytes.
  uint64_t refused = 0;
};

namespace {

using Budget = ReplyReader::Budget;

// hiredis' own functions (static in hiredis.c), taken from a reader it made.
const redisReplyObjectFunctions& DefaultFunctions() {
  static const redisReplyObjectFunctions defaults = [] {
    redisReader* reader = redisReaderCreate();
    const redisReplyObjectFunctions functions = *reader->fn;
    redisReaderFree(reader);
    return functions;
  }();
  return defaults;
}

// The reader's budget. The root task is always rstack[0] of its reader, whatever hiredis
// copies into the privdata of nested tasks.
Budget* BudgetOf(const redisReadTask* task) {
  while (task->parent != nullptr) task = task->parent;
  const char* stack = reinterpret_cast<const char*>(task);
  const auto* reader = reinterpret_cast<const redisReader*>(stack - offsetof(redisReader, rstack));
  return static_cast<Budget*>(reader->privdata);
}

// False (and the request noted) when `bytes` more would exceed the bound.
bool Charge(const redisReadTask* task, uint64_t bytes) {
  Budget* budget = BudgetOf(task);
  if (bytes > budget->limit || budget->used > budget->limit - bytes) {
    budget->refused = budget->used + std::min<uint64_t>(bytes, UINT64_MAX - budget->used);
    return false;
  }
  budget->used += bytes;
  return true;
}

void* CreateString(const redisReadTask* task, char* str, size_t len) {
  if (!Charge(task, len + kElementOverheadBytes)) return nullptr;
  return DefaultFunctions().createString(task, str, len);
}

void* CreateArray(const redisReadTask* task, int elements) {
  const uint64_t pointers = static_cast<uint64_t>(std::max(elements, 0)) * sizeof(void*);
  if (!Charge(task, pointers + kElementOverheadBytes)) return nullptr;
  return DefaultFunctions().createArray(task, elements);
}

void* CreateInteger(const redisReadTask* task, long long value) {  // NOLINT(runtime/int)
  if (!Charge(task, kElementOverheadBytes)) return nullptr;
  return DefaultFunctions().createInteger(task, value);
}

void* CreateNil(const redisReadTask* task) {
  if (!Charge(task, kElementOverheadBytes)) return nullptr;
  return DefaultFunctions().createNil(task);
}

void FreeObject(void* reply) { DefaultFunctions().freeObject(reply); }

redisReplyObjectFunctions kBoundedFunctions = {CreateString, CreateArray, CreateInteger, CreateNil,
                                               FreeObject};

std::string Bytes(uint64_t bytes) {
  if (bytes >= (uint64_t{1} << 30) && bytes % (uint64_t{1} << 30) == 0) {
    return absl::StrCat(bytes >> 30, " GiB");
  }
  if (bytes >= (uint64_t{1} << 20) && bytes % (uint64_t{1} << 20) == 0) {
    return absl::StrCat(bytes >> 20, " MiB");
  }
  if (bytes >= 1024 && bytes % 1024 == 0) return absl::StrCat(bytes >> 10, " KiB");
  return absl::StrCat(bytes, " bytes");
}

absl::Status TooBig(absl::string_view what, uint64_t limit) {
  return absl::FailedPreconditionError(absl::StrCat(
      what, " exceeds the bound of ", Bytes(limit), " on one reply",
      limit < kDefaultMaxReplyBytes
          ? ""
          : " (larger than any value Redis holds with its default proto-max-bulk-len of 512 MB; "
            "values above --big-key-bytes are read in pages)"));
}

}  // namespace

std::string ForeignProtocolHint(absl::string_view first_bytes) {
  if (absl::StartsWith(first_bytes, "HTTP/")) {
    return "the peer answered HTTP, not the Redis protocol: is this the Redis port?";
  }
  // A TLS record: handshake (22) or alert (21), then major version 3.
  if (first_bytes.size() >= 2 && (first_bytes[0] == 0x16 || first_bytes[0] == 0x15) &&
      first_bytes[1] == 0x03) {
    return "the peer answered with TLS: use rediss:// for a TLS port";
  }
  return "";
}

ReplyReader::ReplyReader(uint64_t max_reply_bytes)
    : budget_(std::make_unique<Budget>()),
      reader_(redisReaderCreateWithFunctions(&kBoundedFunctions)) {
  budget_->limit = max_reply_bytes;
  if (reader_ != nullptr) reader_->privdata = budget_.get();
}

ReplyReader::~ReplyReader() {
  if (reader_ != nullptr) redisReaderFree(reader_);
}

void ReplyReader::set_max_reply_bytes(uint64_t bytes) { budget_->limit = bytes; }
uint64_t ReplyReader::max_reply_bytes() const { return budget_->limit; }

size_t ReplyReader::unparsed_bytes() const {
  return reader_ == nullptr ? 0 : reader_->len - reader_->pos;
}

absl::Status ReplyReader::Feed(const char* data, size_t size) {
  if (!error_.ok()) return error_;
  if (reader_ == nullptr || redisReaderFeed(reader_, data, size) != REDIS_OK) {
    error_ = absl::InternalError("reply buffer: out of memory");
  }
  return error_;
}

// hiredis waits on the item at buf[pos], its type byte already taken when the task has a type
// (a bulk string is only taken once all of it is there): a line that does not end, or a bulk
// whose header claims more than the bound, is refused before its bytes are buffered.
absl::Status ReplyReader::CheckUnparsed() {
  const char* item = reader_->buf + reader_->pos;
  const size_t size = reader_->len - reader_->pos;
  if (size == 0) return absl::OkStatus();
  const void* end_of_line = std::memchr(item, '\n', std::min(size, kMaxLineBytes));
  if (end_of_line == nullptr) {
    if (size < kMaxLineBytes) return absl::OkStatus();
    const std::string hint = ForeignProtocolHint(absl::string_view(item, size));
    return absl::UnavailableError(absl::StrCat("a reply line longer than ", Bytes(kMaxLineBytes),
                                               hint.empty() ? "" : ": ", hint));
  }
  const uint64_t room = budget_->limit - std::min(budget_->used, budget_->limit);
  const bool bulk = reader_->ridx >= 0 && reader_->rstack[reader_->ridx].type == REDIS_REPLY_STRING;
  if (bulk) {
    const absl::string_view header(item, static_cast<const char*>(end_of_line) - item);
    int64_t length = 0;
    if (absl::SimpleAtoi(absl::StripTrailingAsciiWhitespace(header), &length) && length > 0 &&
        static_cast<uint64_t>(length) + kElementOverheadBytes > room) {
      return TooBig(absl::StrCat("a bulk string of ", length, " bytes"), budget_->limit);
    }
  }
  if (size > room) return TooBig(absl::StrCat("a reply of ", size, " bytes"), budget_->limit);
  return absl::OkStatus();
}

absl::StatusOr<redisReply*> ReplyReader::Next() {
  if (!error_.ok()) return error_;
  if (reader_ == nullptr) return error_ = absl::InternalError("reply buffer: out of memory");
  // hiredis drops its buffer on a protocol error: what it began with is kept for the hint.
  const std::string head(reader_->buf + reader_->pos,
                         std::min<size_t>(reader_->len - reader_->pos, 8));
  void* reply = nullptr;
  if (redisReaderGetReply(reader_, &reply) != REDIS_OK) {
    if (budget_->refused > 0) {
      error_ =
          TooBig(absl::StrCat("a reply of at least ", budget_->refused, " bytes"), budget_->limit);
    } else {
      const std::string hint = ForeignProtocolHint(head);
      error_ =
          absl::UnavailableError(absl::StrCat(reader_->errstr, hint.empty() ? "" : ": ", hint));
    }
    return error_;
  }
  if (reply != nullptr) {
    budget_->used = 0;
    return static_cast<redisReply*>(reply);
  }
  error_ = CheckUnparsed();
  if (!error_.ok()) return error_;
  return nullptr;
}

}  // namespace ferry::redis
