#include "agent/checkpoint_gate.h"

#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/copy_target.h"
#include "common/base/logging.h"
#include "common/redis/endpoint.h"
#include "common/redis/errors.h"

namespace ferry::agent {

CheckpointGate::CheckpointGate(const ShardSpec& spec, const CopyOptions& options,
                               redis::Router* router, TargetGuard& guard, Checkpoint& checkpoint,
                               const CopyCallbacks& downstream, absl::Duration interval)
    : spec_(spec),
      options_(options),
      router_(router),
      guard_(guard),
      checkpoint_(checkpoint),
      downstream_(downstream),
      interval_(interval),
      callbacks_(downstream),
      last_reported_(checkpoint),
      // The first look after one interval too: a shard shorter than that is confirmed once, at
      // its end (it resumes from the lease's checkpoint meanwhile, which needs no offsets).
      confirmed_at_(absl::Now()) {
  if (router_ == nullptr) return;
  // The attempt starts from a checkpoint whose offsets cover its writes (reported, or gone
  // back to); from here on the router's primaries may acknowledge more.
  guard_.TrackWrites();
  MarkPrimaries();
  callbacks_.on_checkpoint = [this](const Checkpoint&) { OnCheckpoint(); };
  router_->set_before_execute([this] { return stop_; });
}

CheckpointGate::~CheckpointGate() {
  if (router_ != nullptr) router_->set_before_execute(nullptr);
}

void CheckpointGate::MarkPrimaries() {
  for (const redis::Endpoint& node : TargetNodes(spec_, *router_)) {
    guard_.MarkWritten(node.Address());
  }
}

void CheckpointGate::OnCheckpoint() {
  held_ = true;
  // A batch may have gone to a primary the router found since the last mark.
  MarkPrimaries();
  if (!stop_.ok()) return;  // The attempt is ending: Finish decides.
  if (!checkpoint_.done && absl::Now() - confirmed_at_ < interval_) return;
  absl::Status confirmed = Confirm();
  if (confirmed.ok()) {
    Report(/*more_writes=*/true);
  } else {
    stop_ = std::move(confirmed);
  }
}

absl::Status CheckpointGate::Confirm() {
  // The nodes marked written first (TargetGuard::Confirm orders them again), then every
  // primary the router knows now.
  std::vector<redis::Endpoint> endpoints;
  std::set<std::string> listed;
  for (const std::string& address : guard_.Written()) {
    const std::optional<redis::HostPort> parsed = redis::ParseAddress(address);
    if (!parsed.has_value() || !listed.insert(address).second) continue;
    redis::Endpoint endpoint = spec_.target;
    endpoint.host = parsed->host;
    endpoint.port = parsed->port;
    endpoint.db.reset();
    endpoints.push_back(std::move(endpoint));
  }
  for (redis::Endpoint& endpoint : TargetNodes(spec_, *router_)) {
    if (listed.insert(endpoint.Address()).second) endpoints.push_back(std::move(endpoint));
  }
  std::vector<TargetNode> seen;
  for (const redis::Endpoint& endpoint : endpoints) {
    absl::StatusOr<redis::Connection*> connection = ConnectionTo(endpoint);
    absl::StatusOr<TargetNode> node =
        connection.ok() ? TargetGuard::Inspect(**connection) : connection.status();
    if (!node.ok()) {
      connections_.erase(endpoint.Address());
      return absl::UnavailableError(
          absl::StrCat("target ", endpoint.Address(),
                       ": cannot read how far the shard's writes reached in its replication (",
                       node.status().message(), ")"));
    }
    seen.push_back(*std::move(node));
  }
  return guard_.Confirm(std::move(seen));
}

absl::StatusOr<redis::Connection*> CheckpointGate::ConnectionTo(const redis::Endpoint& endpoint) {
  const std::string address = endpoint.Address();
  // Between the shard's writes the router's connection is idle: one round trip, where a
  // connection of the gate's own costs a connect and a handshake first (far from the target,
  // several round trips per shard). A node the router dropped (killed) is opened here.
  if (redis::Connection* idle = router_->IdleConnection(address); idle != nullptr) return idle;
  auto it = connections_.find(address);
  if (it != connections_.end() && !it->second.broken() && it->second.pending() == 0) {
    return &it->second;
  }
  if (it != connections_.end()) connections_.erase(it);
  absl::StatusOr<redis::Connection> opened =
      redis::Connection::Open(endpoint, options_.TargetConnect());
  if (!opened.ok()) return opened.status();
  return &connections_.emplace(address, *std::move(opened)).first->second;
}

void CheckpointGate::Report(bool more_writes) {
  guard_.ClearWritten();
  last_reported_ = checkpoint_;
  held_ = false;
  confirmed_at_ = absl::Now();
  if (downstream_.on_checkpoint) downstream_.on_checkpoint(checkpoint_);
  // The next batch may be acknowledged anywhere before its checkpoint marks the nodes.
  if (more_writes) MarkPrimaries();
}

void CheckpointGate::GoBack(const absl::Status& why) {
  FERRY_LOG(Warning) << "shard " << spec_.shard_index << " of db " << spec_.source_db << ": "
                     << why.message()
                     << "; it goes back to its last reported checkpoint to copy what it wrote "
                        "since again";
  checkpoint_ = last_reported_;  // Taken with no marks (Report).
  held_ = false;
}

absl::Status CheckpointGate::Finish(absl::Status status) {
  if (router_ == nullptr) return status;
  const bool interrupted = guard_.interrupted();
  const bool goes_on =
      status.ok() || interrupted || redis::Classify(status) == redis::ErrorClass::kTransient;
  if (!goes_on) {
    // The shard fails; what it reports must still count what the target holds (an OOM stops
    // it part way), once confirmed like any other checkpoint.
    if (held_ && Confirm().ok()) Report(/*more_writes=*/false);
    return status;
  }
  if (!stop_.ok() && redis::Classify(stop_) == redis::ErrorClass::kFatal) return stop_;
  if (held_) {
    absl::Status confirmed = Confirm();
    if (confirmed.ok()) {
      Report(/*more_writes=*/false);
    } else if (redis::Classify(confirmed) == redis::ErrorClass::kFatal) {
      return confirmed;
    } else {
      GoBack(confirmed);
      if (status.ok()) return absl::UnavailableError(confirmed.message());
    }
  } else {
    // Nothing checkpointed since the last report: what was acknowledged since lies past the
    // checkpoint, and a retry writes it again. The marks would stop that retry at its first look.
    guard_.ClearWritten();
  }
  // CopyShard retries transient errors only; the guard's interruption (ABORTED) is one.
  if (interrupted && !status.ok()) return absl::UnavailableError(status.message());
  return status;
}

}  // namespace ferry::agent
