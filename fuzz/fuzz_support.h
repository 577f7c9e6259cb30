#pragma once

// Shared by the fuzzers in fuzz/: an invariant check that libFuzzer reports as a crash, and
// replies built from fuzz bytes by hiredis' reader (the one ferry's Connection uses), for the
// parsers that take a ReplyView.

#include <hiredis/hiredis.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/redis/connection.h"

namespace ferry::fuzz {

// Aborts (a crash libFuzzer keeps as an artifact) when an invariant does not hold.
inline void Check(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
  std::abort();
}

// The replies of `bytes` read as RESP, in order, up to the first incomplete or malformed one
// (at most `max` of them).
inline std::vector<redis::Reply> ParseReplies(absl::string_view bytes, size_t max = 16) {
  std::vector<redis::Reply> out;
  redisReader* reader = redisReaderCreate();
  if (redisReaderFeed(reader, bytes.data(), bytes.size()) == REDIS_OK) {
    while (out.size() < max) {
      void* reply = nullptr;
      if (redisReaderGetReply(reader, &reply) != REDIS_OK || reply == nullptr) break;
      out.emplace_back(static_cast<redisReply*>(reply));
    }
  }
  redisReaderFree(reader);
  return out;
}

}  // namespace ferry::fuzz
