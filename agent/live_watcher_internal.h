#pragma once

// The watcher behind WatchShard (live_watcher.h), split over live_watcher.cc (subscriptions,
// events, applying, reports) and live_checks.cc (what is checked of a node: its notification
// settings, its health every second, the cluster's topology, the cutover markers). Internal to
// those files and their tests.

#include <atomic>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/copier.h"
#include "agent/copy_target.h"
#include "agent/dirty_set.h"
#include "agent/key_sync.h"
#include "agent/target_guard.h"
#include "common/redis/connection.h"
#include "common/redis/endpoint.h"
#include "common/redis/slot.h"

namespace ferry::agent {

// How long a cutover keeps listening after its markers came back, so that writers still running
// show up in events_after_marker.
inline constexpr absl::Duration kCutoverQuiet = absl::Milliseconds(200);

// What INFO said of a node at one check; a gap shows as a difference between two.
struct NodeHealth {
  bool known = false;  // INFO answered.
  std::string run_id;
  // cmdstat_flushdb, cmdstat_flushall, cmdstat_swapdb calls.
  int64_t flushes[3] = {0, 0, 0};
  int64_t keys = 0;  // In the watched database.
};

// Parses the replies of INFO server, INFO commandstats and INFO keyspace.
NodeHealth ParseNodeHealth(absl::string_view server, absl::string_view commandstats,
                           absl::string_view keyspace, int db);
// Why `now` shows a gap since `before` (empty: none). `events` arrived from the node meanwhile.
std::string HealthGap(const NodeHealth& before, const NodeHealth& now, uint64_t events);
// Why the notification classes `flags` (CONFIG GET notify-keyspace-events) miss events a watch
// needs; empty when they do not.
std::string MissingNotifications(absl::string_view flags);

class LiveWatcher {
 public:
  LiveWatcher(const ShardSpec& spec, const CopyOptions& options, const Checkpoint& resume,
              const std::atomic<bool>* cancel, const CopyCallbacks& callbacks);
  absl::Status Run();

 private:
  // One watched source node.
  struct Node {
    redis::Endpoint endpoint;  // With the database (cluster: none, db 0).
    std::string address;
    std::string id;        // Cluster node id; empty standalone.
    redis::SlotSet slots;  // Cluster: the shard's slots it serves.
    std::optional<redis::Connection> subscriber;
    std::optional<redis::Connection> command;  // INFO, PUBLISH.
    NodeHealth health;
    uint64_t events_since_check = 0;
    std::string marker_key;  // The pending cutover's marker; empty when none.
    bool marker_seen = false;
    uint64_t after_marker = 0;
    // The subscriber's keepalive (CheckHealth): a PING sent and not yet answered, since when.
    // A connection that stops answering (half-open: no RST ever arrives) is a gap.
    bool ping_outstanding = false;
    absl::Time ping_sent;
  };
  struct Cutover {
    uint64_t seq = 0;  // 0: none pending.
    bool all_seen = false;
    absl::Time seen_at;
    uint64_t boundary = 0;  // DirtySet::next_seq() when the last marker came back.
  };

  // One subscription, until a gap (its reason as a non-fatal status), a fatal error or cancel
  // (OK).
  absl::Status Session();
  // The subscribed session's loop: events, checks, cutover, batches, reports.
  absl::Status Follow();
  absl::Status OpenTargetIfNeeded();
  absl::StatusOr<std::vector<Node>> ResolveNodes();
  absl::Status Subscribe(Node& node);
  // live_checks.cc
  absl::Status CheckNotifications(Node& node);
  absl::StatusOr<NodeHealth> ReadHealth(Node& node);
  absl::Status CheckHealth();
  absl::Status CheckTopology();
  absl::Status StartCutover(uint64_t seq);
  absl::Status PublishMarker(Node& node, uint64_t seq, size_t index);
  void MaybeFinishCutover();

  // Reads what `node`'s subscriber holds (waiting up to `wait` for the first message).
  absl::Status Drain(Node& node, absl::Duration wait);
  absl::Status OnMessage(Node& node, const redis::Reply& message);
  absl::Status ApplyBatch();
  // Takes a gap: counted, reported; the dirty set and a pending cutover dropped.
  void Gap(absl::string_view reason);
  // Hands the checkpoint (with LiveStatus) to callbacks.on_checkpoint unless one went less than
  // `min_interval` ago.
  void Report(absl::Duration min_interval);
  bool Cancelled() const { return cancel_ != nullptr && cancel_->load(); }
  bool ApplySignal() const;
  uint64_t CutoverSignal() const;
  int64_t NowMs() const;

  const ShardSpec& spec_;
  const CopyOptions& options_;
  const std::atomic<bool>* cancel_;
  const CopyCallbacks& callbacks_;
  const std::string prefix_;  // "__keyspace@<db>__:"
  const std::string id_;      // Names this watcher's cutover markers.
  Checkpoint checkpoint_;
  ferry::v1::LiveStatus& live_;  // checkpoint_.live
  DirtySet dirty_;
  std::vector<Node> nodes_;
  TargetGuard guard_;
  Target target_;
  bool target_open_ = false;
  std::optional<KeySync> sync_;
  Cutover cutover_;
  // After a gap: apply was on; wait for the controller to turn it off (its rescan) and on.
  bool await_apply_off_ = false;
  bool info_refusal_said_ = false;
  bool config_refusal_said_ = false;
  bool publish_refused_ = false;
  absl::Time last_report_ = absl::InfinitePast();
  absl::Time last_check_ = absl::InfinitePast();
  // (time, events) samples of the last seconds, for events_per_second.
  std::deque<std::pair<absl::Time, uint64_t>> rate_samples_;
};

}  // namespace ferry::agent
