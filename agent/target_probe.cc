#include "agent/target_probe.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/redis/dump_payload.h"
#include "common/redis/errors.h"
#include "common/redis/info.h"
#include "common/redis/slot.h"

namespace ferry::agent {
namespace {

std::string ProbeKey(int slot) {
  std::random_device random;
  std::string key = "ferry:probe:";
  if (slot >= 0) absl::StrAppend(&key, "{", redis::TagForSlot(slot), "}:");
  absl::StrAppend(&key, absl::Hex(random(), absl::kZeroPad8), absl::Hex(random(), absl::kZeroPad8));
  return key;
}

// RESTORE refused before it looked at its arguments: by an ACL or as an unknown (renamed)
// command. Anything else means the command is there.
bool RestoreRefused(absl::string_view error) {
  const absl::Status status = redis::StatusFromReplyError(error);
  return status.code() == absl::StatusCode::kPermissionDenied ||
         redis::Kind(error) == redis::ReplyErrorKind::kUnknownCommand;
}

}  // namespace

absl::StatusOr<TargetFacts> ProbeTarget(redis::Connection& node, int slot) {
  TargetFacts facts;
  FERRY_ASSIGN_OR_RETURN(facts.caps, redis::ReadCapabilities(node));
  facts.payload_version = facts.caps.TablePayloadVersion();
  const std::string key = ProbeKey(slot);
  // Short-lived, and RESTOREd with a TTL of 1 ms: gone without a DEL the user may not have.
  node.Append({"SET", key, "ferry", "PX", "2000"});
  node.Append({"DUMP", key});
  FERRY_RETURN_IF_ERROR(node.Flush());
  FERRY_ASSIGN_OR_RETURN(redis::Reply set, node.ReadReply());
  FERRY_ASSIGN_OR_RETURN(redis::Reply dump, node.ReadReply());
  if (set.is_error() || dump.is_error() || dump.is_nil()) {
    // Without a value of its own, RESTORE is tried on the copy's first key.
    if (!set.is_error()) (void)node.Command({"DEL", key});
    if (node.broken()) return absl::UnavailableError("target connection lost");
    return facts;
  }
  if (std::optional<int> version = redis::PayloadVersion(dump.str()); version.has_value()) {
    facts.payload_version = *version;
  }
  // DEL too: an expired key still counts in DBSIZE until the server's expiry cycle finds it.
  node.Append({"RESTORE", key, "1", dump.str(), "REPLACE"});
  node.Append({"DEL", key});
  FERRY_RETURN_IF_ERROR(node.Flush());
  FERRY_ASSIGN_OR_RETURN(redis::Reply restore, node.ReadReply());
  FERRY_ASSIGN_OR_RETURN(redis::Reply del, node.ReadReply());
  if (restore.is_error()) {
    if (RestoreRefused(restore.str())) {
      facts.restore_allowed = false;
      facts.restore_refusal = std::string(restore.str());
    }
  }
  if (node.broken()) return absl::UnavailableError("target connection lost");
  return facts;
}

TargetFacts Weakest(const std::vector<TargetFacts>& nodes) {
  if (nodes.empty()) return TargetFacts();
  TargetFacts weakest = nodes.front();
  for (const TargetFacts& node : nodes) {
    if (node.caps.version() < weakest.caps.version()) weakest.caps = node.caps;
    if (node.payload_version < weakest.payload_version)
      weakest.payload_version = node.payload_version;
    if (!node.restore_allowed && weakest.restore_allowed) {
      weakest.restore_allowed = false;
      weakest.restore_refusal = node.restore_refusal;
    }
  }
  return weakest;
}

}  // namespace ferry::agent
