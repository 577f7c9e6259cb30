#include "common/redis/reply_reader.h"

#include <hiredis/hiredis.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "common/redis/connection.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::redis {
namespace {

using ::testing::HasSubstr;

// Feeds `bytes` in pieces of `piece` and takes replies as they complete, as Connection does.
// Returns the replies' count, or the first error.
absl::StatusOr<int> ReadAll(ReplyReader& reader, absl::string_view bytes, size_t piece = 7) {
  int replies = 0;
  for (size_t fed = 0;;) {
    absl::StatusOr<redisReply*> reply = reader.Next();
    if (!reply.ok()) return reply.status();
    if (*reply != nullptr) {
      Reply owned(*reply);
      ++replies;
      continue;
    }
    if (fed == bytes.size()) return replies;
    const size_t n = std::min(piece, bytes.size() - fed);
    if (absl::Status s = reader.Feed(bytes.data() + fed, n); !s.ok()) return s;
    fed += n;
  }
}

TEST(ReplyReaderTest, ReadsNestedRepliesInPieces) {
  ReplyReader reader;
  const std::string stream = "+OK\r\n*2\r\n*2\r\n$3\r\nfoo\r\n:42\r\n$-1\r\n-ERR no\r\n";
  absl::StatusOr<int> replies = ReadAll(reader, stream, 1);
  ASSERT_TRUE(replies.ok()) << replies.status();
  EXPECT_EQ(*replies, 3);
  EXPECT_EQ(reader.unparsed_bytes(), 0u);
}

TEST(ReplyReaderTest, BulkClaimingMoreThanTheBoundIsRefusedAtItsHeader) {
  ReplyReader reader;  // 1 GiB.
  ASSERT_TRUE(reader.Feed("$4294967296\r\nxxxx", 17).ok());
  absl::StatusOr<redisReply*> reply = reader.Next();
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(reply.status().message(), HasSubstr("a bulk string of 4294967296 bytes"));
  EXPECT_THAT(reply.status().message(), HasSubstr("1 GiB"));
  EXPECT_FALSE(reader.Next().ok()) << "an error is sticky";
}

TEST(ReplyReaderTest, BulkInsideAnArrayCountsAgainstTheSameBound) {
  ReplyReader reader(1 << 20);
  const std::string stream = absl::StrCat("*2\r\n$600000\r\n", std::string(600000, 'a'),
                                          "\r\n$600000\r\n", std::string(1000, 'b'));
  absl::StatusOr<int> replies = ReadAll(reader, stream, 4096);
  ASSERT_FALSE(replies.ok());
  EXPECT_EQ(replies.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_LT(reader.unparsed_bytes(), 8192u) << "the second bulk was not buffered";
}

TEST(ReplyReaderTest, HugeArrayHeaderIsRefusedBeforeItsAllocation) {
  ReplyReader reader;
  absl::StatusOr<int> replies = ReadAll(reader, "*2147483647\r\n:1\r\n");
  ASSERT_FALSE(replies.ok());
  EXPECT_EQ(replies.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(replies.status().message(), HasSubstr("a reply of at least"));
}

TEST(ReplyReaderTest, ManySmallElementsCountTheirOverhead) {
  ReplyReader reader(32 << 10);
  std::string stream = "*1000\r\n";
  for (int i = 0; i < 1000; ++i) stream += ":1\r\n";
  absl::StatusOr<int> replies = ReadAll(reader, stream);
  ASSERT_FALSE(replies.ok());
  EXPECT_EQ(replies.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ReplyReaderTest, TheBoundIsPerReply) {
  ReplyReader reader(64 << 10);
  const std::string bulk = absl::StrCat("$40000\r\n", std::string(40000, 'x'), "\r\n");
  absl::StatusOr<int> replies = ReadAll(reader, absl::StrCat(bulk, bulk, bulk), 4096);
  ASSERT_TRUE(replies.ok()) << replies.status();
  EXPECT_EQ(*replies, 3);
}

TEST(ReplyReaderTest, ALineThatNeverEndsIsAProtocolError) {
  ReplyReader reader;
  absl::StatusOr<int> replies =
      ReadAll(reader, absl::StrCat("+", std::string(kMaxLineBytes + 10, 'y')), 4096);
  ASSERT_FALSE(replies.ok());
  EXPECT_EQ(replies.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(replies.status().message(), HasSubstr("line longer than 64 KiB"));
}

TEST(ReplyReaderTest, HttpAndTlsAnswersAreNamed) {
  ReplyReader http;
  absl::StatusOr<int> replies = ReadAll(http, "HTTP/1.1 400 Bad Request\r\n\r\n");
  ASSERT_FALSE(replies.ok());
  EXPECT_EQ(replies.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(replies.status().message(), HasSubstr("answered HTTP"));

  ReplyReader tls;
  replies = ReadAll(tls, std::string("\x15\x03\x03\x00\x02\x02\x46", 7));
  ASSERT_FALSE(replies.ok());
  EXPECT_THAT(replies.status().message(), HasSubstr("rediss://"));
}

}  // namespace
}  // namespace ferry::redis
