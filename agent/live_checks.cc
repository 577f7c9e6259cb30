// What a live watch checks of the nodes it follows (live_watcher.h): their notification settings,
// their health every second (a restart, a flush), the cluster's topology, and the cutover markers.

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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

constexpr const char* kFlushCommands[] = {"FLUSHDB", "FLUSHALL", "SWAPDB"};
// The classes of A (g$lshzxet; A adds d, module keys, which a copy does not need).
constexpr absl::string_view kNeededClasses = "g$lshzxet";
constexpr absl::string_view kMarkerPrefix = "ferry:cutover:";

// `calls=` of the `cmdstat_<name>` line of INFO commandstats; 0 when the command never ran.
int64_t Calls(absl::string_view commandstats, absl::string_view name) {
  const std::string stats = redis::InfoField(commandstats, absl::StrCat("cmdstat_", name));
  for (absl::string_view part : absl::StrSplit(stats, ',')) {
    int64_t calls = 0;
    if (absl::ConsumePrefix(&part, "calls=") && absl::SimpleAtoi(part, &calls)) return calls;
  }
  return 0;
}

bool Refused(const Reply& reply) {
  if (!reply.is_error()) return false;
  const absl::StatusCode code = redis::StatusFromReplyError(reply.str()).code();
  return code == absl::StatusCode::kPermissionDenied ||
         absl::StartsWith(reply.str(), "ERR unknown");
}

}  // namespace

NodeHealth ParseNodeHealth(absl::string_view server, absl::string_view commandstats,
                           absl::string_view keyspace, int db) {
  NodeHealth health;
  health.known = true;
  health.run_id = redis::InfoField(server, "run_id");
  for (int i = 0; i < 3; ++i) {
    health.flushes[i] = Calls(commandstats, absl::AsciiStrToLower(kFlushCommands[i]));
  }
  // "db0:keys=10,expires=0,avg_ttl=0"; no line: empty.
  const std::string line = redis::InfoField(keyspace, absl::StrCat("db", db));
  for (absl::string_view part : absl::StrSplit(line, ',')) {
    if (absl::ConsumePrefix(&part, "keys=")) (void)absl::SimpleAtoi(part, &health.keys);
  }
  return health;
}

std::string HealthGap(const NodeHealth& before, const NodeHealth& now, uint64_t events) {
  if (!before.known || !now.known) return "";
  if (before.run_id != now.run_id) return "the source node restarted or was replaced (new run_id)";
  for (int i = 0; i < 3; ++i) {
    if (now.flushes[i] > before.flushes[i]) {
      return absl::StrCat(kFlushCommands[i], " ran on the source node (no key events)");
    }
    if (now.flushes[i] < before.flushes[i]) {
      return "the source node's command statistics were reset (CONFIG RESETSTAT): a FLUSHDB, "
             "FLUSHALL or SWAPDB may have gone unseen";
    }
  }
  if (before.keys > 0 && now.keys == 0 && events < static_cast<uint64_t>(before.keys)) {
    return "the source database emptied with fewer key events than it had keys";
  }
  return "";
}

std::string MissingNotifications(absl::string_view flags) {
  std::string missing;
  if (!absl::StrContains(flags, 'A')) {
    for (char c : kNeededClasses) {
      if (!absl::StrContains(flags, c)) missing.push_back(c);
    }
  }
  if (!absl::StrContains(flags, 'K')) {
    return missing.empty() ? "lack K (keyspace events)"
                           : absl::StrCat("lack K (keyspace events) and the classes ", missing);
  }
  return missing.empty() ? "" : absl::StrCat("lack the event classes ", missing);
}

absl::Status LiveWatcher::CheckNotifications(Node& node) {
  absl::StatusOr<Reply> config = node.command->Command({"CONFIG", "GET", "notify-keyspace-events"});
  if (!config.ok() || config->size() < 2) {
    if (node.command->broken()) return config.status();
    if (std::exchange(config_refusal_said_, true)) return absl::OkStatus();
    FERRY_LOG(Info) << "source " << node.address
                    << ": notify-keyspace-events cannot be read (CONFIG is refused); following "
                       "the notifications as configured (ElastiCache: the parameter group must "
                       "set notify-keyspace-events to KA)";
    return absl::OkStatus();
  }
  const absl::string_view flags = config->element(1).str();
  const std::string missing = MissingNotifications(flags);
  if (missing.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "keyspace notifications on source ", node.address, " are '", flags, "', which ", missing,
      ": run CONFIG SET notify-keyspace-events KA (on ElastiCache, set notify-keyspace-events "
      "to KA in the cluster's parameter group)"));
}

absl::StatusOr<NodeHealth> LiveWatcher::ReadHealth(Node& node) {
  redis::Connection& c = *node.command;
  c.Append({"INFO", "server"});
  c.Append({"INFO", "commandstats"});
  c.Append({"INFO", "keyspace"});
  FERRY_RETURN_IF_ERROR(c.Flush());
  Reply replies[3];
  for (Reply& reply : replies) {
    FERRY_ASSIGN_OR_RETURN(reply, c.ReadReply());
  }
  for (const Reply& reply : replies) {
    if (!reply.is_error()) continue;
    if (!Refused(reply)) {
      return Annotate(redis::StatusFromReplyError(reply.str()), "source INFO");
    }
    if (!info_refusal_said_) {
      info_refusal_said_ = true;
      FERRY_LOG(Warning) << "source " << node.address
                         << ": INFO is refused, so the live watch cannot detect a FLUSHDB, "
                            "FLUSHALL, SWAPDB or restart of the node";
    }
    return NodeHealth();
  }
  return ParseNodeHealth(replies[0].str(), replies[1].str(), replies[2].str(), spec_.source_db);
}

absl::Status LiveWatcher::CheckHealth() {
  // A subscriber whose PING went unanswered this long lost its connection without being told.
  constexpr absl::Duration kPongTimeout = absl::Seconds(5);
  const absl::Time now_time = absl::Now();
  for (Node& node : nodes_) {
    if (node.ping_outstanding && now_time - node.ping_sent > kPongTimeout) {
      return absl::UnavailableError(
          absl::StrCat("the subscription to ", node.address, " did not answer a PING in ",
                       absl::FormatDuration(kPongTimeout), " (a connection lost without a reset)"));
    }
    if (!node.ping_outstanding) {
      node.subscriber->Append({"PING"});
      FERRY_RETURN_IF_ERROR(node.subscriber->Flush());
      node.ping_outstanding = true;
      node.ping_sent = now_time;
    }
  }
  for (Node& node : nodes_) {
    FERRY_ASSIGN_OR_RETURN(NodeHealth now, ReadHealth(node));
    // Deletes' events may still be on their way: those before INFO ran are read first.
    if (node.health.keys > 0 && now.keys == 0) {
      FERRY_RETURN_IF_ERROR(Drain(node, absl::Milliseconds(20)));
    }
    const std::string gap = HealthGap(node.health, now, node.events_since_check);
    node.health = std::move(now);
    node.events_since_check = 0;
    if (!gap.empty()) return absl::UnavailableError(absl::StrCat(gap, " (", node.address, ")"));
  }
  return absl::OkStatus();
}

absl::Status LiveWatcher::CheckTopology() {
  ClusterSource cluster(spec_, options_.SourceConnect());
  FERRY_ASSIGN_OR_RETURN(redis::ClusterTopology topology, cluster.Discover());
  for (const Node& node : nodes_) {
    const redis::ClusterNode* now = nullptr;
    for (const redis::ClusterNode& candidate : topology.nodes) {
      if (candidate.id == node.id) now = &candidate;
    }
    redis::SlotSet slots;
    if (now != nullptr && now->primary) {
      slots = redis::SlotSet::FromRanges(now->slots);
      slots &= spec_.slots;
    }
    if (slots != node.slots) {
      return absl::UnavailableError(absl::StrCat(
          "the source cluster changed: ", node.address,
          now == nullptr || !now->primary ? " is no longer a primary (failover)"
                                          : " no longer serves the same slots (slot migration)"));
    }
  }
  return absl::OkStatus();
}

absl::Status LiveWatcher::StartCutover(uint64_t seq) {
  cutover_ = Cutover();
  cutover_.seq = seq;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    FERRY_RETURN_IF_ERROR(PublishMarker(nodes_[i], seq, i));
  }
  FERRY_LOG(Info) << "watch of " << spec_.source.Redacted() << " db " << spec_.source_db
                  << ": cutover " << seq << ": markers sent on " << nodes_.size() << " node(s)";
  return absl::OkStatus();
}

absl::Status LiveWatcher::PublishMarker(Node& node, uint64_t seq, size_t index) {
  // A cluster marker key must live on its node (the SET fallback): a tag of one of its slots.
  const std::string tag =
      spec_.cluster() ? absl::StrCat("{", redis::TagForSlot(node.slots.first()), "}:") : "";
  node.marker_key = absl::StrCat(kMarkerPrefix, tag, id_, ":", seq, ":", index);
  node.marker_seen = false;
  node.after_marker = 0;
  // On the node's own connection: it comes after every event the node published before.
  if (!publish_refused_) {
    const std::string channel = prefix_ + node.marker_key;
    absl::StatusOr<Reply> published = node.command->Command({"PUBLISH", channel, "cutover"});
    if (published.ok()) return absl::OkStatus();
    if (published.status().code() != absl::StatusCode::kPermissionDenied) {
      return Annotate(published.status(), "cutover marker");
    }
    publish_refused_ = true;
    FERRY_LOG(Info) << "source " << node.address
                    << " refuses PUBLISH: cutover markers are keys written with a 60 s TTL";
  }
  absl::StatusOr<Reply> set = node.command->Command({"SET", node.marker_key, "1", "PX", "60000"});
  return Annotate(set.status(), "cutover marker key");
}

void LiveWatcher::MaybeFinishCutover() {
  if (cutover_.seq == 0) return;
  if (!cutover_.all_seen) {
    for (const Node& node : nodes_) {
      if (!node.marker_seen) return;
    }
    cutover_.all_seen = true;
    cutover_.seen_at = absl::Now();
    cutover_.boundary = dirty_.next_seq();
  }
  // Every key marked before the markers came back must be written, and nothing can be written
  // while the controller holds apply off.
  if (!live_.applying() || dirty_.oldest_seq() < cutover_.boundary) return;
  if (absl::Now() - cutover_.seen_at < kCutoverQuiet) return;
  uint64_t after = 0;
  for (Node& node : nodes_) {
    after += node.after_marker;
    node.marker_key.clear();
    node.marker_seen = false;
    node.after_marker = 0;
  }
  live_.set_cutover_seq(cutover_.seq);
  live_.set_events_after_marker(after);
  FERRY_LOG(Info) << "watch of " << spec_.source.Redacted() << " db " << spec_.source_db
                  << ": cutover " << cutover_.seq << " drained; " << after
                  << " key events arrived after the markers";
  cutover_ = Cutover();
  Report(absl::ZeroDuration());
}

}  // namespace ferry::agent
