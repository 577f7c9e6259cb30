#include "agent/copy_target.h"

#include <atomic>
#include <string>
#include <utility>
#include <vector>

#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/redis/cluster.h"
#include "common/redis/connection.h"

namespace ferry::agent {
namespace {

using redis::ClusterNode;
using redis::Connection;

// How long the router keeps resending one batch through a target's topology change.
constexpr absl::Duration kTargetRetryTime = absl::Seconds(30);

// Says once per process that a target refuses RESTORE: every shard finds it out.
void LogRestoreRefusedOnce(const TargetFacts& facts) {
  static std::atomic<bool> said{false};
  if (facts.restore_allowed || said.exchange(true)) return;
  FERRY_LOG(Info) << "the target refuses RESTORE (" << facts.restore_refusal
                  << "): keys are copied type by type";
}

// The primaries that serve slots: the ones keys are written to. A primary left without any
// (killed, and its replica took over: CLUSTER SHARDS lists it alone until it rejoins) holds
// nothing the copy writes, and may not answer.
std::vector<const ClusterNode*> ServingPrimaries(const redis::Router& router) {
  std::vector<const ClusterNode*> serving;
  for (const ClusterNode* node : router.topology().Primaries()) {
    if (!node->slots.empty()) serving.push_back(node);
  }
  return serving;
}

}  // namespace

std::vector<redis::Endpoint> TargetNodes(const ShardSpec& spec, const redis::Router& router) {
  std::vector<redis::Endpoint> nodes;
  if (router.cluster()) {
    for (const ClusterNode* node : ServingPrimaries(router)) {
      nodes.push_back(redis::NodeEndpoint(spec.target, *node));
    }
  } else {
    nodes.push_back(spec.target);
    nodes.back().db = spec.target_db;
  }
  return nodes;
}

absl::StatusOr<Target> OpenTarget(const ShardSpec& spec, const CopyOptions& options,
                                  TargetGuard& guard) {
  Target target;
  if (options.dry_run) return target;
  redis::RouterRetryPolicy retry;
  retry.max_duration = kTargetRetryTime;
  absl::StatusOr<std::unique_ptr<redis::Router>> router =
      redis::Router::Open(spec.target, spec.target_db, options.TargetConnect(), retry,
                          [&guard](Connection& c) { return guard.Check(c); });
  if (!router.ok()) {
    // TargetGuard's verdicts name the target node themselves.
    if (router.status().code() == absl::StatusCode::kDataLoss) return router.status();
    return Annotate(router.status(), "target");
  }
  target.router = *std::move(router);
  // Every primary's clock counts: a key must not outlive the source on any of them; and every
  // primary must read what is written to it.
  const std::vector<redis::Endpoint> nodes = TargetNodes(spec, *target.router);
  const std::vector<const ClusterNode*> primaries = ServingPrimaries(*target.router);
  std::vector<TargetFacts> facts;
  for (size_t i = 0; i < nodes.size(); ++i) {
    FERRY_ASSIGN_OR_RETURN(Connection connection,
                           Connection::Open(nodes[i], options.TargetConnect()));
    FERRY_RETURN_IF_ERROR(guard.Check(connection));
    FERRY_ASSIGN_OR_RETURN(ExpiryMapper expiry, ExpiryMapper::Measure(&connection));
    target.expiry = i == 0 ? expiry : ExpiryMapper::Earliest(target.expiry, expiry);
    const int slot =
        target.router->cluster() && i < primaries.size() && !primaries[i]->slots.empty()
            ? primaries[i]->slots.front().first
            : -1;
    absl::StatusOr<TargetFacts> node_facts = ProbeTarget(connection, slot);
    if (!node_facts.ok()) return Annotate(node_facts.status(), "target");
    facts.push_back(*std::move(node_facts));
  }
  target.facts = Weakest(facts);
  LogRestoreRefusedOnce(*target.facts);
  return target;
}

}  // namespace ferry::agent
