// The probe round of ShardReader (shard_reader.h): every key's size (and, where needed, type)
// before its value is read, so that big keys are never read whole.

#include <string>
#include <vector>

#include "agent/shard_reader.h"
#include "agent/value_copy.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/redis/errors.h"

namespace ferry::agent {
namespace {

using redis::Reply;

// Where MEMORY USAGE is refused, an aggregate's size is estimated from its length.
constexpr int64_t kBytesPerElement = 64;

}  // namespace

absl::Status ShardReader::Probe(Batch& batch, bool then_scan, uint64_t next_cursor,
                                bool strings_by_mget) {
  const bool want_type = typed_ || filter_types_;
  // Where strings are read with MGET and the shard has held mostly strings, STRLEN sizes them at
  // half the source's cost of MEMORY USAGE; the few other keys (WRONGTYPE) are sized next.
  const bool strlen = mostly_strings_ && strings_by_mget && !want_type;
  const absl::string_view size_command = strlen ? "STRLEN" : "MEMORY USAGE";
  const bool sizes = path_.big_key_bytes != wire::kBigKeysOff;
  const bool want_size = sizes && (strlen || memory_usage_ok_);
  const size_t n = batch.keys.size();
  for (absl::string_view key : batch.keys) {
    if (strlen) {
      source_.Append({"STRLEN", key});
    } else if (want_size) {
      source_.Append({"MEMORY", "USAGE", key});
    }
    if (want_type) source_.Append({"TYPE", key});
  }
  if (then_scan) AppendScan(next_cursor);
  FERRY_RETURN_IF_ERROR(source_.Flush());
  std::vector<std::string> type(n);
  std::vector<int64_t> size(n, -1);
  bool refused = false;
  // A probe that met a redirect or a per-key error leaves the key to the read, which handles
  // those.
  const auto take = [&](absl::string_view command) -> absl::StatusOr<std::optional<Reply>> {
    FERRY_ASSIGN_OR_RETURN(Reply reply, source_.ReadReply());
    if (!reply.is_error()) return std::optional<Reply>(std::move(reply));
    absl::Status status = ReplyStatus("source", command, reply);
    if (status.code() == absl::StatusCode::kPermissionDenied && command == "MEMORY USAGE") {
      refused = true;
      return std::optional<Reply>();
    }
    const redis::ErrorClass error_class = redis::Classify(status);
    if (error_class == redis::ErrorClass::kPerKey || error_class == redis::ErrorClass::kRedirect) {
      return std::optional<Reply>();
    }
    return status;
  };
  for (size_t i = 0; i < n; ++i) {
    if (want_size) {
      FERRY_ASSIGN_OR_RETURN(std::optional<Reply> usage, take(size_command));
      if (usage.has_value()) size[i] = usage->is_nil() ? 0 : usage->integer();
    }
    if (want_type) {
      FERRY_ASSIGN_OR_RETURN(std::optional<Reply> t, take("TYPE"));
      if (t.has_value()) type[i] = std::string(t->str());
    }
  }
  if (then_scan) {
    FERRY_ASSIGN_OR_RETURN(prefetched_, source_.ReadReply());
  }
  if (strlen && memory_usage_ok_) {
    std::vector<size_t> others;  // STRLEN said WRONGTYPE: not strings.
    for (size_t i = 0; i < n; ++i) {
      if (size[i] < 0) others.push_back(i);
    }
    for (size_t i : others) source_.Append({"MEMORY", "USAGE", batch.keys[i]});
    FERRY_RETURN_IF_ERROR(source_.Flush());
    for (size_t i : others) {
      FERRY_ASSIGN_OR_RETURN(std::optional<Reply> usage, take("MEMORY USAGE"));
      if (usage.has_value()) size[i] = usage->is_nil() ? 0 : usage->integer();
    }
  }
  if (refused) {
    FERRY_LOG(Warning) << "source " << source_.endpoint().Address()
                       << " refuses MEMORY USAGE: big keys are found by their length instead";
    memory_usage_ok_ = false;
  }
  if (sizes && !memory_usage_ok_) FERRY_RETURN_IF_ERROR(ProbeLengths(batch, type, size));
  std::vector<bool> erase(n, false);
  for (size_t i = 0; i < n; ++i) {
    if (filter_types_ && !type[i].empty() && type[i] != spec_.type) {
      erase[i] = true;  // What SCAN ... TYPE would have left out.
    } else if ((size[i] >= 0 && static_cast<uint64_t>(size[i]) > path_.big_key_bytes) ||
               (typed_ && !type[i].empty() && type[i] != "none" &&
                !ReadableWhole(type[i], path_.source))) {
      batch.individual.emplace_back(batch.keys[i]);
      erase[i] = true;
    }
  }
  if (typed_) batch.type = std::move(type);
  EraseKeys(batch, erase);
  return absl::OkStatus();
}

absl::Status ShardReader::ProbeLengths(const Batch& batch, std::vector<std::string>& type,
                                       std::vector<int64_t>& size) {
  const size_t n = batch.keys.size();
  std::vector<size_t> untyped;
  for (size_t i = 0; i < n; ++i) {
    if (type[i].empty()) untyped.push_back(i);
  }
  for (size_t i : untyped) source_.Append({"TYPE", batch.keys[i]});
  FERRY_RETURN_IF_ERROR(source_.Flush());
  for (size_t i : untyped) {
    FERRY_ASSIGN_OR_RETURN(Reply t, source_.ReadReply());
    if (!t.is_error()) type[i] = std::string(t.str());
  }
  std::vector<size_t> measured;
  for (size_t i = 0; i < n; ++i) {
    const absl::string_view command = LengthCommand(type[i]);
    if (command.empty()) continue;
    source_.Append({command, batch.keys[i]});
    measured.push_back(i);
  }
  FERRY_RETURN_IF_ERROR(source_.Flush());
  for (size_t i : measured) {
    FERRY_ASSIGN_OR_RETURN(Reply length, source_.ReadReply());
    if (length.is_error() || !length.is_integer()) continue;
    size[i] = type[i] == "string" ? length.integer() : length.integer() * kBytesPerElement;
  }
  return absl::OkStatus();
}

}  // namespace ferry::agent
