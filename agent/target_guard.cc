#include "agent/target_guard.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/redis/errors.h"
#include "common/redis/info.h"

namespace ferry::agent {
namespace {

constexpr absl::string_view kCopyAgain =
    "copy again from the start (a new job, or ferry migrate without the old --state file)";

// Redis reports "no history" as forty zeros.
bool IsReplicationId(absl::string_view id) {
  return !id.empty() && id.find_first_not_of('0') != absl::string_view::npos;
}

// The replication facts of INFO replication; each pair stays unknown unless both fields parse.
void ReadHistories(const std::string& info, TargetNode& node) {
  const std::string id = redis::InfoField(info, "master_replid");
  int64_t offset = -1;
  if (IsReplicationId(id) &&
      absl::SimpleAtoi(redis::InfoField(info, "master_repl_offset"), &offset) && offset >= 0) {
    node.repl_id = id;
    node.repl_offset = offset;
  }
  const std::string id2 = redis::InfoField(info, "master_replid2");
  int64_t second = -1;
  // second_repl_offset is -1 while there is no former history.
  if (IsReplicationId(id2) &&
      absl::SimpleAtoi(redis::InfoField(info, "second_repl_offset"), &second) && second > 0) {
    node.repl_id2 = id2;
    node.repl_id2_end = second - 1;
  }
}

}  // namespace

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
  // Refused or odd (an error, not a status): the node's histories stay unknown.
  if (!replication.is_error()) {
    const std::string info(replication.str());
    node.replica = redis::InfoField(info, "role") == "slave";
    ReadHistories(info, node);
  }
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
  const bool remembered = known != nullptr && !known->run_id.empty();
  if (remembered && known->run_id != seen.run_id) {
    return absl::DataLossError(absl::StrCat(
        "target ", seen.address,
        " restarted during the copy (it is another server process than the one written to): "
        "keys written to it before the restart may be lost; ",
        kCopyAgain));
  }
  if (remembered && known->evicted_keys >= 0 && seen.evicted_keys > known->evicted_keys) {
    return absl::DataLossError(
        absl::StrCat("target ", seen.address, " evicted ", seen.evicted_keys - known->evicted_keys,
                     " keys during the copy (its maxmemory is too small for the data, and its "
                     "maxmemory-policy evicts): copied keys were dropped; raise maxmemory or set "
                     "maxmemory-policy noeviction, then copy again"));
  }
  FERRY_RETURN_IF_ERROR(CheckHistories(seen));
  if (remembered) {
    Refresh(*known, seen);
    return absl::OkStatus();
  }
  // Nothing is written to a replica (a cluster seed that is one): it is not remembered, so
  // its restart is no loss. A node remembered as a primary is judged whatever it is now.
  if (known == nullptr && seen.replica) return absl::OkStatus();
  TargetNode fresh = seen;
  fresh.unconfirmed = track_writes_ && !seen.replica;
  if (known == nullptr) {
    nodes_->push_back(std::move(fresh));
  } else {
    *known = std::move(fresh);
  }
  return absl::OkStatus();
}

absl::Status TargetGuard::CheckHistories(const TargetNode& seen) {
  // A replica holds what its primary sent it; what matters is the primary written to.
  if (seen.replica) return absl::OkStatus();
  for (const TargetNode& node : *nodes_) {
    // The node at seen's own address is the same process (run_id): Refresh moves it on.
    if (node.address == seen.address || node.repl_id.empty() || node.repl_offset < 0) continue;
    if (!seen.repl_id2.empty() && seen.repl_id2 == node.repl_id) {
      // `seen` was a replica of `node` and was promoted (a failover).
      if (node.unconfirmed) {
        interrupted_ = true;
        return absl::AbortedError(absl::StrCat(
            "target ", seen.address, " took over from ", node.address,
            " (a failover) before ferry read how far the latest writes to ", node.address,
            " had reached its replicas: the shard goes back to its last reported checkpoint"));
      }
      if (node.repl_offset > seen.repl_id2_end) {
        return absl::DataLossError(absl::StrCat(
            "target ", seen.address, " was promoted from a replica that had not received ",
            node.repl_offset - seen.repl_id2_end, " bytes of what was written to ", node.address,
            " (a failover after ", node.address,
            " failed lost writes it had acknowledged): keys written there may be lost; ",
            kCopyAgain));
      }
    } else if (seen.repl_id == node.repl_id && seen.repl_offset >= 0 &&
               seen.repl_offset < node.repl_offset) {
      return absl::DataLossError(
          absl::StrCat("target ", seen.address, " continues the replication history of ",
                       node.address, " but lacks ", node.repl_offset - seen.repl_offset,
                       " bytes of what was written there: keys written to ", node.address,
                       " may be lost; ", kCopyAgain));
    }
  }
  return absl::OkStatus();
}

void TargetGuard::Refresh(TargetNode& known, const TargetNode& seen) {
  if (seen.replica) {
    // Demoted (a failover) and continuing from its new primary: it left its own history at
    // repl_id2_end, after every write it acknowledged there.
    if (known.unconfirmed && !known.repl_id.empty() && seen.repl_id2 == known.repl_id) {
      known.repl_offset = std::max(known.repl_offset, seen.repl_id2_end);
      if (confirming_) known.unconfirmed = false;
    }
    return;
  }
  if (seen.repl_id.empty()) return;  // Unknown now: what was known stays.
  if (known.repl_id == seen.repl_id) {
    // Between writes the offset would grow only with others' traffic (and the replication
    // PINGs): it keeps saying where the shard's writes end.
    if (known.unconfirmed) known.repl_offset = std::max(known.repl_offset, seen.repl_offset);
  } else if (known.repl_id.empty() || known.unconfirmed) {
    // A history learned now, or a new one of its own (a primary that had no replicas for
    // repl-backlog-ttl drops its id): its data is its own, and a replica promoted later copies
    // it in full first.
    known.repl_id = seen.repl_id;
    known.repl_offset = seen.repl_offset;
  } else {
    return;  // Nothing written since: its old offset still covers the shard's writes.
  }
  // Read after every write acknowledged so far; later ones of this checkpoint may still come
  // (a look from on_connect): only a confirmation ends the mark.
  if (confirming_) known.unconfirmed = false;
}

absl::Status TargetGuard::Confirm(std::vector<TargetNode> seen) {
  // Remembered nodes first: one demoted by a failover gives its last offset before its
  // successor is judged against it.
  std::stable_partition(seen.begin(), seen.end(),
                        [this](const TargetNode& node) { return Find(node.address) != nullptr; });
  confirming_ = true;
  absl::Status status;
  for (const TargetNode& node : seen) {
    status = Observe(node);
    if (!status.ok()) break;
  }
  confirming_ = false;
  return status;
}

void TargetGuard::MarkWritten(const std::string& address) {
  if (TargetNode* node = Find(address)) node->unconfirmed = true;
}

void TargetGuard::ClearWritten() {
  for (TargetNode& node : *nodes_) node.unconfirmed = false;
}

std::vector<std::string> TargetGuard::Written() const {
  std::vector<std::string> addresses;
  for (const TargetNode& node : *nodes_) {
    if (node.unconfirmed) addresses.push_back(node.address);
  }
  return addresses;
}

}  // namespace ferry::agent
