// LoadMixedData (compare.h): a deterministic loader of every data type, for the copy tests.

#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "common/base/status_macros.h"
#include "common/redis/errors.h"
#include "common/testing/compare.h"

namespace ferry::testing {
namespace {

constexpr int kKinds = 13;
constexpr const char* kKindNames[kKinds] = {"ascii", "binary", "utf8",  "empty", "int",
                                            "hash",  "list",   "set",   "zset",  "stream",
                                            "hll",   "geo",    "bitmap"};
constexpr const char* kUtf8Samples[] = {"héllo wörld", "日本語のテキスト", "emoji 🚀✓", "Ελληνικά",
                                        "עברית",       "ﬁ ligature"};

// Writes the keys of LoadMixedData through one pipeline. All randomness comes from one
// mt19937_64 consumed in a fixed order (no std distributions: they differ between libraries),
// so a seed always yields the same data.
class MixedWriter {
 public:
  MixedWriter(redis::Connection& conn, uint64_t seed) : conn_(conn), seed_(seed), rng_(seed) {}

  absl::Status WriteKey(int i, double ttl_fraction) {
    const int kind = i % kKinds;
    const std::string key = absl::StrCat("mixed:", seed_, ":", i, ":", kKindNames[kind]);
    WriteValue(kind, i, key);
    if (static_cast<double>(Next(1000000)) < ttl_fraction * 1e6) {
      Send({"PEXPIRE", key, absl::StrCat(120000 + Next(180000))});
    }
    if (conn_.pending() >= 1000 || conn_.buffered_bytes() >= (4u << 20)) return Drain();
    return absl::OkStatus();
  }

  // Sends what is buffered and reads every reply; the first error reply becomes the status.
  absl::Status Drain() {
    FERRY_RETURN_IF_ERROR(conn_.Flush());
    absl::Status first_error;
    while (conn_.pending() > 0) {
      FERRY_ASSIGN_OR_RETURN(redis::Reply reply, conn_.ReadReply());
      if (reply.is_error() && first_error.ok())
        first_error = Annotate(redis::StatusFromReplyError(reply.str()), "LoadMixedData");
    }
    return first_error;
  }

 private:
  uint64_t Next(uint64_t n) { return rng_() % n; }
  std::string Text(size_t max_len) {
    std::string s(1 + Next(max_len), ' ');
    for (char& c : s) c = static_cast<char>('a' + Next(26));
    return s;
  }
  std::string Bytes(size_t max_len) {
    std::string s(1 + Next(max_len), '\0');
    for (char& c : s) c = static_cast<char>(Next(256));
    return s;
  }
  // Mostly small (compact encodings); one in 50 past the listpack/intset limits.
  size_t CollectionSize() { return Next(50) == 0 ? 129 + Next(200) : 1 + Next(8); }
  void Send(const std::vector<std::string>& argv) {
    std::vector<absl::string_view> views(argv.begin(), argv.end());
    conn_.Append(absl::MakeConstSpan(views));
  }

  void WriteValue(int kind, int i, const std::string& key) {
    std::vector<std::string> cmd;
    const size_t n = CollectionSize();
    switch (kind) {
      case 0:
        return Send({"SET", key, i % 1000 == 999 ? std::string(64 << 10, 'x') : Text(64)});
      case 1:
        return Send({"SET", key, Bytes(64)});
      case 2:
        return Send({"SET", key, absl::StrCat(kUtf8Samples[Next(6)], " ", i)});
      case 3:
        return Send({"SET", key, ""});
      case 4:
        return Send(
            {"SET", key, absl::StrCat(static_cast<int64_t>(Next(2000000000000)) - 1000000000000)});
      case 5:
        cmd = {"HSET", key};
        for (size_t j = 0; j < n; ++j) {
          cmd.push_back(absl::StrCat("f", j));
          cmd.push_back(Next(4) == 0 ? Bytes(16) : Text(16));
        }
        return Send(cmd);
      case 6:
        cmd = {"RPUSH", key};
        for (size_t j = 0; j < n; ++j) cmd.push_back(Next(4) == 0 ? Bytes(16) : Text(16));
        return Send(cmd);
      case 7:
        cmd = {"SADD", key};
        for (size_t j = 0; j < n; ++j) {
          cmd.push_back((i / kKinds) % 2 == 0 ? absl::StrCat(Next(1000000)) : Text(12));
        }
        return Send(cmd);
      case 8:
        cmd = {"ZADD", key};
        for (size_t j = 0; j < n; ++j) {
          cmd.push_back(absl::StrCat((static_cast<double>(Next(2000001)) - 1000000) / 8));
          cmd.push_back(Text(12));
        }
        return Send(cmd);
      case 9:
        return WriteStream(key, n);
      case 10:
        cmd = {"PFADD", key};
        for (size_t j = 0; j < (n > 100 ? 2000 : n * 5); ++j) cmd.push_back(Text(10));
        return Send(cmd);
      case 11:
        cmd = {"GEOADD", key};
        for (size_t j = 0; j < n; ++j) {
          cmd.push_back(absl::StrCat(-180 + static_cast<double>(Next(3600000)) / 10000));
          cmd.push_back(absl::StrCat(-85 + static_cast<double>(Next(1700000)) / 10000));
          cmd.push_back(Text(12));
        }
        return Send(cmd);
      default:
        for (size_t j = 0; j < n; ++j) Send({"SETBIT", key, absl::StrCat(Next(1 << 16)), "1"});
        return;
    }
  }

  // Entries with fixed ids, a group `g1` whose consumer `alice` holds one pending entry and a
  // group `g2` that has read nothing.
  void WriteStream(const std::string& key, size_t n) {
    for (size_t j = 0; j < n; ++j) {
      Send({"XADD", key, absl::StrCat(j + 1, "-1"), "field", Text(16), "bin", Bytes(8)});
    }
    Send({"XGROUP", "CREATE", key, "g1", "0"});
    Send({"XREADGROUP", "GROUP", "g1", "alice", "COUNT", "1", "STREAMS", key, ">"});
    Send({"XGROUP", "CREATE", key, "g2", "$"});
  }

  redis::Connection& conn_;
  const uint64_t seed_;
  std::mt19937_64 rng_;
};

}  // namespace

absl::Status LoadMixedData(redis::Connection& conn, int db, int keys, uint64_t seed,
                           double ttl_fraction) {
  FERRY_RETURN_IF_ERROR(conn.Select(db));
  MixedWriter writer(conn, seed);
  for (int i = 0; i < keys; ++i) FERRY_RETURN_IF_ERROR(writer.WriteKey(i, ttl_fraction));
  return writer.Drain();
}

}  // namespace ferry::testing
