#include "agent/target_guard.h"

#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/redis/errors.h"
#include "common/redis/info.h"

namespace ferry::agent {

absl::StatusOr<TargetNode> TargetGuard::Inspect(redis::Connection& connection) {
  TargetNode node;
  node.address = connection.endpoint().Address();
  // `INFO server`, `stats` and `replication` exist in every version; one round trip asks all.
  connection.Append({"INFO", "server"});
  connection.Append({"INFO", "stats"});
  connection.Append({"INFO", "replication"});
  FERRY_ASSIGN_OR_RETURN(redis::Reply server, connection.ReadReply());
  FERRY_ASSIGN_OR_RETURN(redis::Reply stats, connection.ReadReply());
  FERRY_ASSIGN_OR_RETURN(redis::Reply replication, connection.ReadReply());
  // Refused to this user (an ACL): unknown, and nothing to compare. Any other error counts.
  const auto text = [](const redis::Reply& reply) -> absl::StatusOr<std::optional<std::string>> {
    if (!reply.is_error()) return std::optional<std::string>(std::string(reply.str()));
    const absl::Status status = redis::StatusFromReplyError(reply.str());
    if (status.code() == absl::StatusCode::kPermissionDenied) return std::nullopt;
    return Annotate(status, "INFO");
  };
  FERRY_ASSIGN_OR_RETURN(std::optional<std::string> server_info, text(server));
  if (!server_info.has_value()) return node;
  node.run_id = redis::InfoField(*server_info, "run_id");
  node.replica = !replication.is_error() && redis::InfoField(replication.str(), "role") == "slave";
  FERRY_ASSIGN_OR_RETURN(std::optional<std::string> stats_info, text(stats));
  if (!stats_info.has_value() ||
      !absl::SimpleAtoi(redis::InfoField(*stats_info, "evicted_keys"), &node.evicted_keys)) {
    node.evicted_keys = -1;
  }
  return node;
}

TargetNode* TargetGuard::Find(const std::string& address) {
  for (TargetNode& node : *nodes_) {
    if (node.address == address) return &node;
  }
  return nullptr;
}

absl::Status TargetGuard::Check(redis::Connection& connection) {
  FERRY_ASSIGN_OR_RETURN(TargetNode seen, Inspect(connection));
  return Observe(seen);
}

absl::Status TargetGuard::Observe(const TargetNode& seen) {
  if (seen.run_id.empty()) return absl::OkStatus();  // No INFO: nothing to compare.
  TargetNode* known = Find(seen.address);
  if (known == nullptr || known->run_id.empty()) {
    // Nothing is written to a replica (a cluster seed that is one): it is not remembered, so
    // its restart is no loss. A node remembered as a primary is judged whatever it is now.
    if (known == nullptr && seen.replica) return absl::OkStatus();
    if (known == nullptr) {
      nodes_->push_back(seen);
    } else {
      *known = seen;
    }
    return absl::OkStatus();
  }
  if (known->run_id != seen.run_id) {
    return absl::DataLossError(absl::StrCat(
        "target ", seen.address,
        " restarted during the copy (it is another server process than the one written to): "
        "keys written to it before the restart may be lost; copy again from the start (a new "
        "job, or ferry migrate without the old --state file)"));
  }
  if (known->evicted_keys >= 0 && seen.evicted_keys > known->evicted_keys) {
    return absl::DataLossError(
        absl::StrCat("target ", seen.address, " evicted ", seen.evicted_keys - known->evicted_keys,
                     " keys during the copy (its maxmemory is too small for the data, and its "
                     "maxmemory-policy evicts): copied keys were dropped; raise maxmemory or set "
                     "maxmemory-policy noeviction, then copy again"));
  }
  return absl::OkStatus();
}

}  // namespace ferry::agent
