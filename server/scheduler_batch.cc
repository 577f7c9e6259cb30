// Batches: many agent messages, one store commit. Each report's checkpoint is still committed
// before its Ack is sent: the Ack waits in the outbox until the batch's commit succeeded.

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "server/scheduler.h"

namespace ferry::server {

void Scheduler::BeginBatchLocked() {
  if (batch_depth_++ > 0) return;
  const absl::Status begun = store_->BeginBatch();
  batch_open_ = begun.ok();
  // Without a batch every write commits on its own: slower, as safe.
  if (!begun.ok()) FERRY_LOG(Error) << "writes are not batched: " << begun;
}

void Scheduler::EndBatchLocked() {
  if (--batch_depth_ > 0) return;
  const absl::Status committed = batch_open_ ? store_->CommitBatch() : absl::OkStatus();
  batch_open_ = false;
  std::vector<std::pair<std::string, ferry::v1::ControllerMessage>> outbox;
  outbox.swap(outbox_);
  if (committed.ok()) {
    for (const auto& [agent_id, message] : outbox) SendLocked(agent_id, message);
    return;
  }
  // Nothing of the batch is in the file: none of its Acks or Leases may go out. The agents they
  // were for lose their leases (a lease not sent would otherwise stay held by a live agent);
  // their next message is refused and they connect again. The memory is ahead of the file until
  // those shards are written again, which is safe: nothing of it was acknowledged.
  std::set<std::string> agents;
  for (const auto& [agent_id, message] : outbox) agents.insert(agent_id);
  FERRY_LOG(Error) << "cannot commit the state file: " << committed << "; " << outbox.size()
                   << " messages dropped, " << agents.size() << " agents disconnected";
  for (const std::string& agent_id : agents) DisconnectLocked(agent_id);
}

absl::Status Scheduler::HandleAgentMessage(const std::string& agent_id,
                                           const ferry::v1::AgentMessage& message) {
  return HandleAgentMessages({{agent_id, &message}}).front();
}

std::vector<absl::Status> Scheduler::HandleAgentMessages(const AgentBatch& batch) {
  absl::MutexLock lock(&mu_);
  std::vector<absl::Status> statuses;
  statuses.reserve(batch.size());
  BeginBatchLocked();
  for (const auto& [agent_id, message] : batch) {
    auto agent = agents_.find(agent_id);
    statuses.push_back(agent == agents_.end()
                           ? absl::NotFoundError(absl::StrCat(agent_id, " not registered"))
                           : HandleAgentMessageLocked(agent->second, *message));
  }
  DispatchLocked();  // Once for the batch: slots freed by any of its messages.
  EndBatchLocked();
  return statuses;
}

}  // namespace ferry::server
