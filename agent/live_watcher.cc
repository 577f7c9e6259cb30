#include "agent/live_watcher.h"

#include <algorithm>
#include <random>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "agent/cluster_source.h"
#include "agent/live_watcher_internal.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/redis/cluster.h"
#include "common/redis/errors.h"

namespace ferry::agent {
namespace {

using redis::Reply;

constexpr absl::Duration kReportInterval = absl::Milliseconds(500);
// Reports after batches: at most this often.
constexpr absl::Duration kBatchReportInterval = absl::Milliseconds(100);
constexpr absl::Duration kCheckInterval = absl::Seconds(1);
// An idle watcher waits this long for events between its other duties.
constexpr absl::Duration kIdleWait = absl::Milliseconds(50);
constexpr absl::Duration kSubscribeTimeout = absl::Seconds(10);
constexpr absl::Duration kFirstBackoff = absl::Milliseconds(100);
constexpr absl::Duration kMaxBackoff = absl::Seconds(5);
// A subscription that lasted this long starts the backoff over.
constexpr absl::Duration kStableSession = absl::Seconds(10);
constexpr absl::Duration kRateWindow = absl::Seconds(5);
// Messages read from one subscriber in one go, so that checks and batches still run in a flood.
constexpr int kMaxDrainMessages = 50000;
constexpr absl::string_view kTempPrefix = "ferry:tmp:";
constexpr absl::string_view kMarkerPrefix = "ferry:cutover:";

std::string RandomId() {
  std::random_device random;
  return absl::StrCat(absl::Hex(random()), absl::Hex(random()));
}

uint64_t DirtyBound(const CopyOptions& options) {
  return options.live.has_value() ? options.live->dirty_bytes : wire::kDefaultLiveDirtyBytes;
}

}  // namespace

absl::Status WatchShard(const ShardSpec& spec, const CopyOptions& options, const Checkpoint& resume,
                        const std::atomic<bool>* cancel, const CopyCallbacks& callbacks) {
  if (!options.live.has_value()) {
    return absl::InvalidArgumentError("a watch lease belongs to a live job");
  }
  LiveWatcher watcher(spec, options, resume, cancel, callbacks);
  return watcher.Run();
}

LiveWatcher::LiveWatcher(const ShardSpec& spec, const CopyOptions& options,
                         const Checkpoint& resume, const std::atomic<bool>* cancel,
                         const CopyCallbacks& callbacks)
    : spec_(spec),
      options_(options),
      cancel_(cancel),
      callbacks_(callbacks),
      prefix_(absl::StrCat("__keyspace@", spec.source_db, "__:")),
      id_(RandomId()),
      checkpoint_(resume),
      live_(checkpoint_.live),
      dirty_(DirtyBound(options)),
      guard_(&checkpoint_.target_nodes) {}

bool LiveWatcher::ApplySignal() const {
  const LiveSignals* signals = options_.live->signals;
  return signals != nullptr && signals->apply.load();
}

uint64_t LiveWatcher::CutoverSignal() const {
  const LiveSignals* signals = options_.live->signals;
  return signals != nullptr ? signals->cutover_seq.load() : 0;
}

int64_t LiveWatcher::NowMs() const { return absl::ToUnixMillis(absl::Now()); }

absl::Status LiveWatcher::Run() {
  live_.set_subscribed(false);
  live_.set_applying(false);
  absl::Duration backoff = kFirstBackoff;
  while (!Cancelled()) {
    const absl::Time start = absl::Now();
    absl::Status status = Session();
    nodes_.clear();
    if (Cancelled()) break;
    if (redis::Classify(status) == redis::ErrorClass::kFatal) {
      Gap(status.message());
      return status;
    }
    if (!status.ok()) Gap(status.message());
    if (absl::Now() - start > kStableSession) backoff = kFirstBackoff;
    const absl::Time until = absl::Now() + backoff;
    while (!Cancelled() && absl::Now() < until) absl::SleepFor(absl::Milliseconds(20));
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
  live_.set_subscribed(false);
  live_.set_applying(false);
  Report(absl::ZeroDuration());
  return absl::CancelledError("copy cancelled");
}

absl::Status LiveWatcher::OpenTargetIfNeeded() {
  if (target_open_) return absl::OkStatus();
  FERRY_ASSIGN_OR_RETURN(target_, OpenTarget(spec_, options_, guard_));
  sync_.emplace(spec_, options_, target_, callbacks_);
  target_open_ = true;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<LiveWatcher::Node>> LiveWatcher::ResolveNodes() {
  std::vector<Node> nodes;
  if (!spec_.cluster()) {
    Node& node = nodes.emplace_back();
    node.endpoint = spec_.source;
    node.endpoint.db = spec_.source_db;
    node.address = spec_.source.Address();
    return nodes;
  }
  ClusterSource cluster(spec_, options_.SourceConnect());
  FERRY_ASSIGN_OR_RETURN(redis::ClusterTopology topology, cluster.Discover());
  redis::SlotSet unserved = spec_.slots;
  for (const redis::ClusterNode* primary : topology.Primaries()) {
    redis::SlotSet slots = redis::SlotSet::FromRanges(primary->slots);
    slots &= spec_.slots;
    if (slots.empty()) continue;
    unserved -= slots;
    Node& node = nodes.emplace_back();
    node.endpoint = redis::NodeEndpoint(spec_.source, *primary);
    node.address = ClusterSource::Address(*primary);
    node.id = primary->id;
    node.slots = slots;
  }
  if (!unserved.empty()) {
    return absl::UnavailableError(absl::StrCat("no primary of the source cluster serves slots ",
                                               redis::FormatSlotRanges(unserved.Ranges())));
  }
  return nodes;
}

absl::Status LiveWatcher::Session() {
  FERRY_RETURN_IF_ERROR(OpenTargetIfNeeded());
  FERRY_ASSIGN_OR_RETURN(nodes_, ResolveNodes());
  std::vector<std::string> addresses;
  for (Node& node : nodes_) {
    absl::StatusOr<redis::Connection> command =
        redis::Connection::Open(node.endpoint, options_.SourceConnect());
    if (!command.ok()) return Annotate(command.status(), "source");
    node.command = *std::move(command);
    FERRY_RETURN_IF_ERROR(CheckNotifications(node));
    // Read before subscribing: a flush or restart from here on shows as a difference.
    FERRY_ASSIGN_OR_RETURN(node.health, ReadHealth(node));
    FERRY_RETURN_IF_ERROR(Subscribe(node));
    addresses.push_back(node.address);
  }
  live_.set_subscriptions(live_.subscriptions() + 1);
  live_.set_subscribed(true);
  FERRY_LOG(Info) << "watch of " << absl::StrJoin(addresses, ", ") << " db " << spec_.source_db
                  << ": subscribed to keyspace notifications";
  Report(absl::ZeroDuration());
  return Follow();
}

absl::Status LiveWatcher::Follow() {
  last_check_ = absl::Now();
  while (!Cancelled()) {
    for (Node& node : nodes_) FERRY_RETURN_IF_ERROR(Drain(node, absl::ZeroDuration()));
    if (absl::Now() - last_check_ >= kCheckInterval) {
      FERRY_RETURN_IF_ERROR(CheckHealth());
      if (spec_.cluster()) FERRY_RETURN_IF_ERROR(CheckTopology());
      last_check_ = absl::Now();
    }
    const uint64_t wanted = CutoverSignal();
    if (wanted > live_.cutover_seq() && wanted != cutover_.seq) {
      FERRY_RETURN_IF_ERROR(StartCutover(wanted));
    }
    const bool apply = ApplySignal();
    if (!apply) await_apply_off_ = false;
    live_.set_applying(apply && !await_apply_off_);
    if (live_.applying() && !dirty_.empty()) {
      FERRY_RETURN_IF_ERROR(ApplyBatch());
      MaybeFinishCutover();
      Report(kBatchReportInterval);
      continue;
    }
    MaybeFinishCutover();
    Report(kReportInterval);
    FERRY_RETURN_IF_ERROR(Drain(nodes_.front(), kIdleWait));
  }
  return absl::OkStatus();
}

absl::Status LiveWatcher::Subscribe(Node& node) {
  absl::StatusOr<redis::Connection> subscriber =
      redis::Connection::Open(node.endpoint, options_.SourceConnect());
  if (!subscriber.ok()) return Annotate(subscriber.status(), "source");
  node.subscriber = *std::move(subscriber);
  node.ping_outstanding = false;
  // The channel's suffix is the key, so MATCH narrows the pattern exactly; the cutover markers
  // need their own pattern then.
  std::vector<std::string> patterns = {prefix_ + (spec_.match.empty() ? "*" : spec_.match)};
  if (!spec_.match.empty()) patterns.push_back(absl::StrCat(prefix_, kMarkerPrefix, "*"));
  std::vector<absl::string_view> argv = {"PSUBSCRIBE"};
  argv.insert(argv.end(), patterns.begin(), patterns.end());
  node.subscriber->Append(argv);
  FERRY_RETURN_IF_ERROR(node.subscriber->Flush());
  const absl::Time deadline = absl::Now() + kSubscribeTimeout;
  size_t confirmed = 0;
  while (confirmed < patterns.size()) {
    FERRY_ASSIGN_OR_RETURN(std::optional<Reply> reply,
                           node.subscriber->ReadReplyWithin(deadline - absl::Now()));
    if (!reply.has_value()) {
      return absl::UnavailableError(absl::StrCat("PSUBSCRIBE on ", node.address,
                                                 " was not confirmed within ",
                                                 absl::FormatDuration(kSubscribeTimeout)));
    }
    if (reply->is_error()) {
      absl::Status status = redis::StatusFromReplyError(reply->str());
      if (status.code() == absl::StatusCode::kPermissionDenied) {
        return absl::PermissionDeniedError(
            absl::StrCat("the source user may not follow keyspace notifications on ", node.address,
                         " (PSUBSCRIBE: ", status.message(),
                         "): it needs +psubscribe and the channel permission &* (allchannels)"));
      }
      return Annotate(status, absl::StrCat("PSUBSCRIBE on ", node.address));
    }
    if (reply->is_array() && reply->element(0).str() == "psubscribe") {
      ++confirmed;
    } else {
      FERRY_RETURN_IF_ERROR(OnMessage(node, *reply));
    }
  }
  return absl::OkStatus();
}

absl::Status LiveWatcher::Drain(Node& node, absl::Duration wait) {
  for (int n = 0; n < kMaxDrainMessages; ++n) {
    absl::StatusOr<std::optional<Reply>> message =
        node.subscriber->ReadReplyWithin(n == 0 ? wait : absl::ZeroDuration());
    if (!message.ok()) {
      return absl::UnavailableError(absl::StrCat("the subscription to ", node.address,
                                                 " was lost: ", message.status().message()));
    }
    if (!message->has_value()) return absl::OkStatus();
    FERRY_RETURN_IF_ERROR(OnMessage(node, **message));
  }
  return absl::OkStatus();
}

absl::Status LiveWatcher::OnMessage(Node& node, const Reply& message) {
  if (message.is_error()) {
    return absl::UnavailableError(
        absl::StrCat("the subscription to ", node.address, " answered an error"));
  }
  // The keepalive's answer in subscribed mode: ["pong", ""].
  if (message.is_array() && message.size() >= 1 && message.element(0).str() == "pong") {
    node.ping_outstanding = false;
    return absl::OkStatus();
  }
  // ["pmessage", pattern, channel, event]; confirmations and the like are not events.
  if (!message.is_array() || message.size() != 4 || message.element(0).str() != "pmessage") {
    return absl::OkStatus();
  }
  const absl::string_view channel = message.element(2).str();
  if (!absl::StartsWith(channel, prefix_)) return absl::OkStatus();
  const absl::string_view key = channel.substr(prefix_.size());
  if (absl::StartsWith(key, kMarkerPrefix)) {
    if (!node.marker_key.empty() && key == node.marker_key) node.marker_seen = true;
    return absl::OkStatus();
  }
  if (absl::StartsWith(key, kTempPrefix)) return absl::OkStatus();
  if (spec_.cluster() && !spec_.slots.Contains(redis::KeySlot(key))) return absl::OkStatus();
  live_.set_events(live_.events() + 1);
  ++node.events_since_check;
  // A key expiring on its own after the marker is no writer still running: the target expires
  // its own copy (its TTL was copied); it is applied all the same.
  if (node.marker_seen && message.element(3).str() != "expired") ++node.after_marker;
  if (dirty_.Add(key, NowMs()) == DirtySet::Mark::kFull) {
    return absl::UnavailableError(
        absl::StrCat("the dirty set is full (", dirty_.size(), " keys, ", dirty_.bytes(),
                     " bytes; the job's live_dirty_bytes raises the bound)"));
  }
  return absl::OkStatus();
}

absl::Status LiveWatcher::ApplyBatch() {
  const std::vector<std::string> keys =
      dirty_.Take(static_cast<size_t>(std::max(1, options_.batch_keys)));
  std::vector<std::vector<std::string>> groups(nodes_.size());
  for (const std::string& key : keys) {
    size_t owner = 0;
    if (spec_.cluster()) {
      const int slot = redis::KeySlot(key);
      while (owner + 1 < nodes_.size() && !nodes_[owner].slots.Contains(slot)) ++owner;
    }
    groups[owner].push_back(key);
  }
  for (size_t i = 0; i < nodes_.size(); ++i) {
    absl::StatusOr<KeySync::Result> result = sync_->Sync(nodes_[i].endpoint, false, groups[i]);
    // The batch's marks are cleared: what it did not write is covered by the rescan only.
    if (!result.ok()) return Annotate(result.status(), "applying dirty keys");
    // A key applied again is a re-sent write to the writer (ShardWriter::Copied): both count.
    live_.set_applied(live_.applied() + result->delta.copied() + result->delta.resent());
    live_.set_deleted(live_.deleted() + result->deleted());
    ferry::v1::Counters& counters = checkpoint_.counters;
    counters.set_failed(counters.failed() + result->delta.failed());
    if (!result->moved_slots.empty()) {
      return absl::UnavailableError(absl::StrCat("source slots of ", nodes_[i].address,
                                                 " moved while dirty keys were applied"));
    }
  }
  return absl::OkStatus();
}

void LiveWatcher::Gap(absl::string_view reason) {
  if (live_.subscribed()) {
    live_.set_gaps(live_.gaps() + 1);
    live_.set_last_gap(std::string(reason));
    // Apply is on: the controller turns it off for the rescan pass of this gap, then on again.
    await_apply_off_ = ApplySignal();
    FERRY_LOG(Warning) << "watch of " << spec_.source.Redacted() << " db " << spec_.source_db
                       << ": events may have been lost (" << reason
                       << "); subscribing again, the node's keys are rescanned";
  } else {
    FERRY_LOG(Warning) << "watch of " << spec_.source.Redacted() << " db " << spec_.source_db
                       << ": cannot subscribe: " << reason;
  }
  live_.set_subscribed(false);
  live_.set_applying(false);
  dirty_.Clear();
  cutover_ = Cutover();
  Report(absl::ZeroDuration());
}

void LiveWatcher::Report(absl::Duration min_interval) {
  const absl::Time now = absl::Now();
  if (now - last_report_ < min_interval) return;
  last_report_ = now;
  live_.set_dirty_keys(dirty_.size());
  live_.set_dirty_bytes(dirty_.bytes());
  live_.set_oldest_dirty_ms(dirty_.OldestAgeMs(NowMs()));
  rate_samples_.emplace_back(now, live_.events());
  while (rate_samples_.size() > 2 && now - rate_samples_[1].first >= kRateWindow) {
    rate_samples_.pop_front();
  }
  const auto& [since, events] = rate_samples_.front();
  const double seconds = absl::ToDoubleSeconds(now - since);
  live_.set_events_per_second(seconds > 0 ? static_cast<double>(live_.events() - events) / seconds
                                          : 0);
  if (callbacks_.on_checkpoint) callbacks_.on_checkpoint(checkpoint_);
}

}  // namespace ferry::agent
