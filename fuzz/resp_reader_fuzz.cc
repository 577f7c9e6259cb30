// The RESP reply reader: common/redis/reply_reader.h (hiredis' redisReader with bounds, what
// Connection reads with), and hiredis' reader alone, each driven the way Connection drives it
// (feed a piece, take every reply it completed, feed the next), with the pieces' sizes and the
// reply bound taken from the fuzz input. Whatever the split, the replies (and where an error
// stops the stream, and its code) are those of the whole stream fed at once; the bounded reader
// returns what hiredis returns, up to the first reply over its bound; every reply is read
// through ReplyView.

#include <fuzzer/FuzzedDataProvider.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/redis/connection.h"
#include "common/redis/reply_reader.h"
#include "fuzz/fuzz_support.h"

namespace ferry::fuzz {
namespace {

// A reply as text, through ferry's ReplyView: what every caller can see of it.
void Describe(redis::ReplyView reply, int depth, std::string& out) {
  Check(depth <= 16, "a reply nested deeper than hiredis allows");
  absl::StrAppend(&out, static_cast<int>(reply.type()), "(");
  switch (reply.type()) {
    case redis::ReplyView::Type::kArray:
      for (size_t i = 0; i < reply.size(); ++i) Describe(reply.element(i), depth + 1, out);
      Check(reply.element(reply.size()).is_nil(), "an element past the end");
      break;
    case redis::ReplyView::Type::kInteger:
      absl::StrAppend(&out, reply.integer());
      break;
    default:
      absl::StrAppend(&out, reply.str().size(), ":", reply.str(), ",", reply.integer());
      Check(reply.size() == 0, "a size for a non-array");
  }
  out.push_back(')');
}

// The replies of `stream` fed in pieces of `sizes` (cycled; empty: all at once), up to the
// first protocol error, which ends the list with "error".
std::vector<std::string> Read(absl::string_view stream, const std::vector<size_t>& sizes) {
  std::vector<std::string> out;
  redisReader* reader = redisReaderCreate();
  size_t fed = 0;
  size_t next_size = 0;
  for (;;) {
    void* reply = nullptr;
    if (redisReaderGetReply(reader, &reply) != REDIS_OK) {
      out.push_back("error");
      break;
    }
    if (reply != nullptr) {
      redis::Reply owned(static_cast<redisReply*>(reply));
      out.emplace_back();
      Describe(owned, 0, out.back());
      continue;
    }
    if (fed == stream.size()) break;
    size_t piece = stream.size() - fed;
    if (!sizes.empty()) piece = std::min(piece, sizes[next_size++ % sizes.size()]);
    Check(redisReaderFeed(reader, stream.data() + fed, piece) == REDIS_OK, "feed failed");
    fed += piece;
  }
  redisReaderFree(reader);
  return out;
}

// The same through ReplyReader with `max_bytes`; a refused reply ends the list with its code.
std::vector<std::string> ReadBounded(absl::string_view stream, const std::vector<size_t>& sizes,
                                     uint64_t max_bytes) {
  std::vector<std::string> out;
  redis::ReplyReader reader(max_bytes);
  size_t fed = 0;
  size_t next_size = 0;
  for (;;) {
    absl::StatusOr<redisReply*> reply = reader.Next();
    if (!reply.ok()) {
      Check(reader.failed() && !reader.Next().ok(), "an error that does not stick");
      out.push_back(absl::StrCat("error ", reply.status().code()));
      break;
    }
    if (*reply != nullptr) {
      redis::Reply owned(*reply);
      out.emplace_back();
      Describe(owned, 0, out.back());
      continue;
    }
    if (fed == stream.size()) break;
    size_t piece = stream.size() - fed;
    if (!sizes.empty()) piece = std::min(piece, sizes[next_size++ % sizes.size()]);
    if (!reader.Feed(stream.data() + fed, piece).ok()) {
      out.push_back("feed error");
      break;
    }
    fed += piece;
  }
  return out;
}

// Whether `stream` holds a header that claims more than 1 MiB (an array of millions of
// elements): hiredis' own reader allocates what an array header claims before its elements
// arrive, so such a stream is read only through the bounded reader, never as the reference.
bool ClaimsTooMuch(absl::string_view stream) {
  redis::ReplyReader reader(1 << 20);
  if (!reader.Feed(stream.data(), stream.size()).ok()) return true;
  for (;;) {
    absl::StatusOr<redisReply*> reply = reader.Next();
    if (!reply.ok()) return reply.status().code() == absl::StatusCode::kFailedPrecondition;
    if (*reply == nullptr) return false;
    redis::Reply owned(*reply);
  }
}

}  // namespace
}  // namespace ferry::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider input(data, size);
  std::vector<size_t> sizes(input.ConsumeIntegralInRange<size_t>(1, 8));
  for (size_t& piece : sizes) piece = input.ConsumeIntegralInRange<size_t>(1, 64);
  const uint64_t max_bytes = input.ConsumeBool() ? ferry::redis::kDefaultMaxReplyBytes
                                                 : input.ConsumeIntegralInRange<uint64_t>(1, 4096);
  const std::string stream = input.ConsumeRemainingBytesAsString();
  // Which error ends a malformed stream (too big or not RESP) may depend on how much of it had
  // arrived; that it ends there does not.
  auto without_code = [](std::vector<std::string> replies) {
    if (!replies.empty() && absl::StartsWith(replies.back(), "error ")) replies.back() = "error";
    return replies;
  };
  const std::vector<std::string> bounded = ferry::fuzz::ReadBounded(stream, {}, max_bytes);
  ferry::fuzz::Check(
      without_code(ferry::fuzz::ReadBounded(stream, sizes, max_bytes)) == without_code(bounded),
      "the split changed the bounded reader's replies");
  // No reference for a stream hiredis alone would allocate too much for (ClaimsTooMuch); the
  // bounded reader read it above within ASan's memory limit.
  if (ferry::fuzz::ClaimsTooMuch(stream)) return 0;
  const std::vector<std::string> whole = ferry::fuzz::Read(stream, {});
  ferry::fuzz::Check(ferry::fuzz::Read(stream, sizes) == whole, "the split changed the replies");
  ferry::fuzz::Check(ferry::fuzz::Read(stream, {1}) == whole, "bytes one by one differ");
  // Up to its first error, the bounded reader returns hiredis' replies; without one, all of
  // them (a protocol error included, as UNAVAILABLE).
  const bool refused = !bounded.empty() && absl::StartsWith(bounded.back(), "error ");
  const size_t replies = bounded.size() - (refused ? 1 : 0);
  ferry::fuzz::Check(replies <= whole.size() &&
                         std::equal(bounded.begin(), bounded.begin() + replies, whole.begin()),
                     "the bounded reader returned other replies than hiredis");
  if (!refused) {
    ferry::fuzz::Check(bounded.size() == whole.size() && (whole.empty() || whole.back() != "error"),
                       "the bounded reader missed a protocol error or a reply");
  }
  return 0;
}
