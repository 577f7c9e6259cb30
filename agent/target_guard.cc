#include "agent/target_guard.h"

#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/redis/info.h"

namespace ferry::agent {

absl::StatusOr<TargetNode> TargetGuard::Inspect(redis::Connection& connection) {
  TargetNode node;
  node.address = connection.endpoint().Address();
  // `INFO server` and `INFO stats` exist in every version.
  FERRY_ASSIGN_OR_RETURN(std::optional<std::string> server, redis::ReadInfo(connection, "server"));
  if (!server.has_value()) return node;
  node.run_id = redis::InfoField(*server, "run_id");
  FERRY_ASSIGN_OR_RETURN(std::optional<std::string> stats, redis::ReadInfo(connection, "stats"));
  if (!stats.has_value() ||
      !absl::SimpleAtoi(redis::InfoField(*stats, "evicted_keys"), &node.evicted_keys)) {
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
