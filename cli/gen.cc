#include "cli/gen.h"

#include <cstdio>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "cli/job_options.h"
#include "common/base/status_macros.h"
#include "common/redis/connection.h"

namespace ferry::cli {
namespace {

const char* const kMixedTypes[] = {"string", "hash", "list", "set",   "zset",
                                   "stream", "hll",  "geo",  "bitmap"};

// xorshift64*: fast and reproducible from --seed.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t Next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545F4914F6CDD1Dull;
  }
  double Unit() { return static_cast<double>(Next() >> 11) / 9007199254740992.0; }
  std::string Text(size_t size) {
    static const char kAlphabet[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    std::string out(size, ' ');
    uint64_t bits = 0;
    for (size_t i = 0; i < size; ++i) {
      if (i % 10 == 0) bits = Next();
      out[i] = kAlphabet[(bits & 63) % 62];
      bits >>= 6;
    }
    return out;
  }

 private:
  uint64_t state_;
};

// Receives generated commands: a connection's pipeline, or RESP on stdout.
class Sink {
 public:
  explicit Sink(redis::Connection* conn) : conn_(conn) {}
  ~Sink() { FlushStdout(); }

  absl::Status Add(std::vector<std::string> argv) {
    std::vector<absl::string_view> views(argv.begin(), argv.end());
    if (conn_ != nullptr) {
      conn_->Append(views);
      if (conn_->pending() >= 2000) return Drain();
      return absl::OkStatus();
    }
    absl::StrAppend(&out_, "*", views.size(), "\r\n");
    for (absl::string_view v : views) absl::StrAppend(&out_, "$", v.size(), "\r\n", v, "\r\n");
    if (out_.size() > (1 << 20)) FlushStdout();
    return absl::OkStatus();
  }

  // Reads every pending reply; the first error reply fails the run.
  absl::Status Drain() {
    if (conn_ == nullptr) return absl::OkStatus();
    FERRY_RETURN_IF_ERROR(conn_->Flush());
    absl::Status first;
    while (conn_->pending() > 0) {
      FERRY_ASSIGN_OR_RETURN(redis::Reply reply, conn_->ReadReply());
      if (reply.is_error() && first.ok()) first = absl::InternalError(std::string(reply.str()));
    }
    return first;
  }

 private:
  void FlushStdout() {
    std::fwrite(out_.data(), 1, out_.size(), stdout);
    out_.clear();
  }

  redis::Connection* conn_;
  std::string out_;
};

absl::Status GenKey(uint64_t i, const GenOptions& o, Rng& rng, Sink& sink) {
  const std::string type = o.types == "mixed" ? kMixedTypes[i % 9] : o.types;
  const std::string key = absl::StrCat(o.prefix, i);
  const size_t element = std::max<size_t>(8, static_cast<size_t>(o.value_size) / 5);
  if (type == "string") {
    FERRY_RETURN_IF_ERROR(sink.Add({"SET", key, rng.Text(o.value_size)}));
  } else if (type == "hash") {
    std::vector<std::string> cmd = {"HSET", key};
    for (int f = 0; f < 5; ++f) cmd.insert(cmd.end(), {absl::StrCat("f", f), rng.Text(element)});
    FERRY_RETURN_IF_ERROR(sink.Add(std::move(cmd)));
  } else if (type == "list" || type == "set" || type == "zset") {
    std::vector<std::string> cmd = {type == "list"  ? "RPUSH"
                                    : type == "set" ? "SADD"
                                                    : "ZADD",
                                    key};
    for (int f = 0; f < 5; ++f) {
      if (type == "zset") cmd.push_back(std::to_string(rng.Next() % 1000));
      cmd.push_back(rng.Text(element));
    }
    FERRY_RETURN_IF_ERROR(sink.Add(std::move(cmd)));
  } else if (type == "stream") {
    for (int e = 0; e < 3; ++e) {
      FERRY_RETURN_IF_ERROR(sink.Add({"XADD", key, "*", "field", rng.Text(element)}));
    }
    if (i % 2 == 0) FERRY_RETURN_IF_ERROR(sink.Add({"XGROUP", "CREATE", key, "readers", "0"}));
  } else if (type == "hll") {
    FERRY_RETURN_IF_ERROR(
        sink.Add({"PFADD", key, rng.Text(8), rng.Text(8), rng.Text(8), rng.Text(8)}));
  } else if (type == "geo") {
    FERRY_RETURN_IF_ERROR(sink.Add({"GEOADD", key, "13.361389", "38.115556", "palermo",
                                    absl::StrCat(15 + rng.Unit()), "37.502669", "catania"}));
  } else if (type == "bitmap") {
    FERRY_RETURN_IF_ERROR(sink.Add({"SETBIT", key, std::to_string(rng.Next() % 4096), "1"}));
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--types must be string, hash, list, set, zset, stream, hll, geo, bitmap or mixed, "
        "not \"",
        type, "\""));
  }
  if (o.ttl_fraction > 0 && rng.Unit() < o.ttl_fraction) {
    const uint64_t ttl_ms = 600000 + rng.Next() % 3000000;
    FERRY_RETURN_IF_ERROR(sink.Add({"PEXPIRE", key, std::to_string(ttl_ms)}));
  }
  return absl::OkStatus();
}

absl::Status Generate(const GenOptions& options) {
  std::optional<redis::Connection> conn;
  if (options.target) {
    absl::StatusOr<redis::Connection> opened = redis::Connection::Open(*options.target);
    if (!opened.ok()) return opened.status();
    conn = std::move(*opened);
  }
  Rng rng(options.seed);
  Sink sink(conn ? &*conn : nullptr);
  for (uint64_t i = 0; i < options.keys; ++i) {
    FERRY_RETURN_IF_ERROR(GenKey(i, options, rng, sink));
  }
  return sink.Drain();
}

}  // namespace

int RunGen(const GenOptions& options) {
  absl::Status status = Generate(options);
  if (!status.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(status.message()).c_str());
    return ExitCodeFor(status) == 0 ? 1 : ExitCodeFor(status);
  }
  if (options.target) {
    std::fprintf(stderr, "wrote %llu keys to %s\n", static_cast<unsigned long long>(options.keys),
                 options.target->Redacted().c_str());
  }
  return 0;
}

}  // namespace ferry::cli
