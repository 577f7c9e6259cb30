#include "agent/copier.h"

#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/batch_sizing.h"
#include "agent/checkpoint_gate.h"
#include "agent/cluster_source.h"
#include "agent/copy_target.h"
#include "agent/expiry.h"
#include "agent/key_sync.h"
#include "agent/live_watcher.h"
#include "agent/rate_limiter.h"
#include "agent/shard_reader.h"
#include "agent/shard_verifier.h"
#include "agent/shard_walk.h"
#include "agent/shard_writer.h"
#include "agent/target_guard.h"
#include "agent/target_probe.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/redis/errors.h"
#include "common/redis/info.h"
#include "common/redis/router.h"

namespace ferry::agent {

using redis::ClusterNode;
using redis::ClusterTopology;
using redis::Connection;
using redis::SlotSet;

namespace {

// How long a slot migration on the source may hold up the end of a shard.
constexpr absl::Duration kSettleTimeout = absl::Minutes(2);
// Rounds of re-reading moved slots before the attempt gives up (and is retried).
constexpr int kMaxRescanRounds = 5;
// How long the router keeps resending one batch through a target's topology change.
constexpr absl::Duration kTargetRetryTime = absl::Seconds(30);

bool Cancelled(const std::atomic<bool>* cancel) { return cancel != nullptr && cancel->load(); }

// What one attempt works with: the shard, the target, where to report.
struct Attempt {
  const ShardSpec& spec;
  const CopyOptions& options;
  Checkpoint& checkpoint;
  RateLimiter* limiter;
  const std::atomic<bool>* cancel;
  BatchSink& writer;          // ShardWriter, or ShardVerifier for verify jobs.
  const TargetFacts* target;  // Null in a dry run and for verify jobs.
  // The other side's router (the target's; a verify job's other side): its round trip sizes
  // the batches with the source's. Null in a dry run.
  redis::Router* other = nullptr;

  // The batch for the farther of `source` and the other side (batch_sizing.h).
  absl::StatusOr<BatchSize> SizeBatches(Connection& source) const {
    FERRY_ASSIGN_OR_RETURN(absl::Duration rtt, MeasureRoundTrip(source));
    if (other != nullptr) {
      FERRY_ASSIGN_OR_RETURN(absl::Duration other_rtt, MeasureRoundTrip(*other));
      rtt = std::max(rtt, other_rtt);
    }
    const BatchSize size = BatchSizeFor(options.batch_keys, options.max_bytes_in_flight, rtt);
    if (size.keys != options.batch_keys) {
      FERRY_LOG(Info) << "shard " << spec.shard_index << " of db " << spec.source_db << ": "
                      << absl::FormatDuration(rtt) << " round trip: batches of " << size.keys
                      << " keys, " << (size.bytes_in_flight >> 20) << " MiB in flight";
    }
    return size;
  }

  // Reads with `read` (on a second thread, into a queue bounded in bytes) while this thread
  // writes what it reads. `replica`: `source` is a replica read on purpose.
  // `caps`: the source's, when the caller read them already (one INFO fewer).
  absl::Status Pump(Connection& source, bool replica,
                    const std::function<absl::Status(ShardReader&)>& read,
                    const redis::Capabilities* caps = nullptr) const {
    ReadPath path;
    if (caps != nullptr) {
      path.source = *caps;
    } else {
      FERRY_ASSIGN_OR_RETURN(path.source, redis::ReadCapabilities(source));
    }
    path.target = target;
    path.typed = options.typed_only || (target != nullptr && !target->restore_allowed);
    // A verify job's reader only lists keys: the verifier sizes them on both sides itself.
    path.big_key_bytes = options.verify.has_value() ? wire::kBigKeysOff : options.big_key_bytes;
    // Absolute expiry times where the source has them: a stalled source cannot shorten TTLs.
    FERRY_ASSIGN_OR_RETURN(std::optional<SourceClock> clock,
                           AbsoluteExpiryClock(source, path.source));
    FERRY_ASSIGN_OR_RETURN(const BatchSize size, SizeBatches(source));
    CopyOptions sized = options;
    sized.batch_keys = size.keys;
    sized.max_bytes_in_flight = size.bytes_in_flight;
    BatchQueue queue(sized.max_bytes_in_flight);
    ShardReader reader(spec, sized, source, replica, clock, path, limiter, cancel, queue);
    std::thread thread([&] { queue.Close(read(reader)); });
    absl::Status status;
    while (std::optional<Batch> batch = queue.Pop()) {
      status = writer.Write(*batch);
      if (!status.ok()) break;
    }
    queue.Stop();
    thread.join();
    return status.ok() ? queue.status() : status;
  }

  // A checkpoint from another server process (restart, failover) means nothing here: the
  // shard starts over.
  void RestartUnlessSame(const std::string& run_id, absl::string_view node) const {
    if (checkpoint.run_id == run_id) return;
    if (!checkpoint.run_id.empty()) {
      FERRY_LOG(Warning) << "source " << node << " db " << spec.source_db
                         << " is another server process than at the checkpoint (restart or "
                            "failover): shard "
                         << spec.shard_index << " starts over from its first cursor";
    }
    checkpoint.cursor = ShardWalk(spec, SlotSet()).start_cursor();
    checkpoint.scanned = false;
    checkpoint.rescan = SlotSet();
    checkpoint.run_id = run_id;
  }

  absl::Status Walk(Connection& source, bool replica, const ShardWalk& walk,
                    const redis::Capabilities* caps) const {
    const uint64_t cursor = checkpoint.cursor;
    return Pump(
        source, replica, [&walk, cursor](ShardReader& r) { return r.Walk(walk, cursor); }, caps);
  }
};

struct NodeFacts {
  std::string run_id;
  redis::ScanScheme scheme = redis::ScanScheme::kSingleDict;
  redis::Capabilities caps;  // From the same INFO.
};

// The server process behind `source` and its cursor scheme. A restricted user may not run
// INFO: resume checks then rely on the cursor alone, and the plan's scheme is trusted.
absl::StatusOr<NodeFacts> ReadNodeFacts(Connection& source, bool cluster,
                                        redis::ScanScheme planned) {
  FERRY_ASSIGN_OR_RETURN(std::optional<std::string> info, redis::ReadInfo(source, "server"));
  if (!info.has_value()) return NodeFacts{"unknown", planned, redis::Capabilities::FromInfo("")};
  return NodeFacts{redis::InfoField(*info, "run_id"), redis::ScanSchemeOf(*info, cluster),
                   redis::Capabilities::FromInfo(*info)};
}

absl::Status CopyStandalone(const Attempt& a) {
  redis::Endpoint endpoint = a.spec.source;
  endpoint.db = a.spec.source_db;
  FERRY_ASSIGN_OR_RETURN(Connection source, Connection::Open(endpoint, a.options.SourceConnect()));
  FERRY_ASSIGN_OR_RETURN(NodeFacts facts, ReadNodeFacts(source, false, a.spec.scheme));
  a.RestartUnlessSame(facts.run_id, a.spec.source.Address());
  if (a.checkpoint.scanned) return absl::OkStatus();
  return a.Walk(source, /*replica=*/false, ShardWalk(a.spec, SlotSet()), &facts.caps);
}

// Reads the slots of `pending` again from whichever primary serves each now, until a round
// ends with every slot on the node it was read from.
absl::Status Rescan(const Attempt& a, ClusterSource& cluster, SlotSet pending) {
  for (int round = 0; round < kMaxRescanRounds && !pending.empty(); ++round) {
    FERRY_LOG(Info) << "shard " << a.spec.shard_index << ": reading source slots "
                    << redis::FormatSlotRanges(pending.Ranges()) << " again from their owners";
    FERRY_ASSIGN_OR_RETURN(ClusterTopology before,
                           cluster.DiscoverSettled(pending, kSettleTimeout));
    SlotSet unserved = pending;
    SlotSet moved;
    for (const ClusterNode* owner : before.Primaries()) {
      SlotSet slots = SlotSet::FromRanges(owner->slots);
      slots &= pending;
      if (slots.empty()) continue;
      unserved -= slots;
      const ClusterNode read = ReadNodeOf(before, *owner, a.spec.read_from, a.spec.shard_index);
      FERRY_ASSIGN_OR_RETURN(Connection source, cluster.OpenForReading(read));
      FERRY_RETURN_IF_ERROR(
          a.Pump(source, !read.primary, [&slots](ShardReader& r) { return r.ReadSlots(slots); }));
      if (Cancelled(a.cancel)) return absl::OkStatus();
      std::vector<std::string> group = {owner->id};
      for (const ClusterNode* replica : before.ReplicasOf(owner->id)) group.push_back(replica->id);
      FERRY_ASSIGN_OR_RETURN(ClusterTopology after, cluster.DiscoverSettled(slots, kSettleTimeout));
      moved |= MovedAway(after, slots, group);
    }
    if (!unserved.empty()) {
      return absl::UnavailableError(absl::StrCat("no primary of the source cluster serves slots ",
                                                 redis::FormatSlotRanges(unserved.Ranges())));
    }
    pending = moved;
  }
  if (!pending.empty()) {
    return absl::UnavailableError(absl::StrCat("source slots ",
                                               redis::FormatSlotRanges(pending.Ranges()),
                                               " kept moving while they were read"));
  }
  return absl::OkStatus();
}

absl::Status CopyCluster(const Attempt& a) {
  ClusterSource cluster(a.spec, a.options.SourceConnect());
  FERRY_ASSIGN_OR_RETURN(ClusterTopology topology, cluster.Discover());
  FERRY_ASSIGN_OR_RETURN(SourceChoice choice,
                         ChooseSource(topology, a.spec.slots, a.spec.source_node, a.checkpoint.node,
                                      a.spec.read_from, a.spec.shard_index));
  const std::string node = ClusterSource::Address(choice.read);
  FERRY_ASSIGN_OR_RETURN(Connection source, cluster.OpenForReading(choice.read));
  FERRY_ASSIGN_OR_RETURN(NodeFacts facts, ReadNodeFacts(source, true, a.spec.scheme));
  if (facts.scheme != a.spec.scheme) {
    return absl::FailedPreconditionError(absl::StrCat(
        "source node ", node, " uses the ", redis::ScanSchemeName(facts.scheme),
        " cursor scheme but the job was planned for ", redis::ScanSchemeName(a.spec.scheme),
        " (the node was upgraded or replaced): submit the job again"));
  }
  a.RestartUnlessSame(facts.run_id, node);
  a.checkpoint.node = node;
  // Shard slots served elsewhere are read from their owners after the walk.
  a.checkpoint.rescan |= choice.foreign;
  if (!a.checkpoint.scanned) {
    FERRY_RETURN_IF_ERROR(
        a.Walk(source, !choice.read.primary, ShardWalk(a.spec, choice.owned), &facts.caps));
    if (!a.checkpoint.scanned) return absl::OkStatus();  // Stopped.
  }
  // A slot that left the node's group while the walk ran lost keys to its new owner.
  FERRY_ASSIGN_OR_RETURN(ClusterTopology after,
                         cluster.DiscoverSettled(choice.owned, kSettleTimeout));
  a.checkpoint.rescan |= MovedAway(after, choice.owned, choice.group);
  return Rescan(a, cluster, a.checkpoint.rescan);
}

// A router to one side of a verify job, and what that side can do.
absl::StatusOr<std::unique_ptr<redis::Router>> OpenSide(const redis::Endpoint& endpoint, int db,
                                                        const CopyOptions& options,
                                                        absl::string_view name,
                                                        redis::Capabilities& caps) {
  redis::RouterRetryPolicy retry;
  retry.max_duration = kTargetRetryTime;
  const redis::ConnectOptions connect =
      name == "source" ? options.SourceConnect() : options.TargetConnect();
  absl::StatusOr<std::unique_ptr<redis::Router>> router =
      redis::Router::Open(endpoint, db, connect, retry);
  if (!router.ok()) return Annotate(router.status(), name);
  absl::StatusOr<Connection> seed = Connection::Open(endpoint, connect);
  if (!seed.ok()) return Annotate(seed.status(), name);
  absl::StatusOr<redis::Capabilities> read = redis::ReadCapabilities(*seed);
  if (!read.ok()) return Annotate(read.status(), name);
  caps = *read;
  return router;
}

// One attempt of a verify shard: the walk of CopyAttempt, each batch compared instead of
// written. Nothing is written to either side, so no target guard and no target probe.
absl::Status VerifyAttempt(const ShardSpec& spec, const CopyOptions& options,
                           Checkpoint& checkpoint, RateLimiter* limiter,
                           const std::atomic<bool>* cancel, const CopyCallbacks& callbacks) {
  // spec.source is the side walked: the job's target for a reverse shard (lease_spec.cc).
  const char* walked_name = spec.reverse ? "target" : "source";
  const char* other_name = spec.reverse ? "source" : "target";
  VerifySides sides;
  FERRY_ASSIGN_OR_RETURN(
      std::unique_ptr<redis::Router> walked,
      OpenSide(spec.source, spec.source_db, options, walked_name, sides.walked_caps));
  FERRY_ASSIGN_OR_RETURN(
      std::unique_ptr<redis::Router> other,
      OpenSide(spec.target, spec.target_db, options, other_name, sides.other_caps));
  sides.walked = walked.get();
  sides.other = other.get();
  ShardVerifier verifier(spec, options, sides, checkpoint, callbacks);
  const Attempt attempt{spec, options, checkpoint, limiter, cancel, verifier, nullptr, other.get()};
  FERRY_RETURN_IF_ERROR(spec.cluster() ? CopyCluster(attempt) : CopyStandalone(attempt));
  if (!checkpoint.scanned || Cancelled(cancel)) return absl::OkStatus();
  checkpoint.done = true;
  if (callbacks.on_checkpoint) callbacks.on_checkpoint(checkpoint);
  return absl::OkStatus();
}

// Walks the shard with `attempt`, whose sink writes to `target`, and marks it done. `callbacks`
// are a CheckpointGate's: the done checkpoint is reported only once every target primary was
// read again and is still the process written to, evicted nothing and kept its replication
// (a failure there is the gate's Finish's result).
absl::Status WalkWritingTarget(const Attempt& attempt, const CopyCallbacks& callbacks) {
  FERRY_RETURN_IF_ERROR(attempt.spec.cluster() ? CopyCluster(attempt) : CopyStandalone(attempt));
  if (!attempt.checkpoint.scanned || Cancelled(attempt.cancel)) return absl::OkStatus();
  attempt.checkpoint.done = true;
  if (callbacks.on_checkpoint) callbacks.on_checkpoint(attempt.checkpoint);
  return absl::OkStatus();
}

// One attempt of a live job's rescan pass (Checkpoint.pass > 0, after a gap in the keyspace
// notifications): the walk of a verify shard by value with no re-checks, in fix mode. Forward
// shards copy each key that differs from the source as it is now (through the target guard, as a
// copy); reverse shards (spec.source is the job's target) delete the target keys the source
// lacks. Keys already equal are not written.
absl::Status RescanAttempt(const ShardSpec& spec, const CopyOptions& options,
                           Checkpoint& checkpoint, RateLimiter* limiter,
                           const std::atomic<bool>* cancel, const CopyCallbacks& callbacks) {
  CopyOptions compare = options;
  VerifyOptions& verify = compare.verify.emplace();
  verify.full = true;
  verify.max_rechecks = 0;
  VerifySides sides;
  std::unique_ptr<redis::Router> walked, other;
  Target target;
  std::optional<KeySync> fix;
  TargetGuard guard(&checkpoint.target_nodes);
  if (spec.reverse) {
    FERRY_ASSIGN_OR_RETURN(
        walked, OpenSide(spec.source, spec.source_db, options, "target", sides.walked_caps));
    FERRY_ASSIGN_OR_RETURN(
        other, OpenSide(spec.target, spec.target_db, options, "source", sides.other_caps));
    sides.walked = walked.get();
    sides.other = other.get();
    sides.fix_extras = true;
  } else {
    FERRY_ASSIGN_OR_RETURN(
        walked, OpenSide(spec.source, spec.source_db, options, "source", sides.walked_caps));
    FERRY_ASSIGN_OR_RETURN(target, OpenTarget(spec, options, guard));
    if (target.router == nullptr) {
      return absl::InvalidArgumentError("a rescan pass cannot be a dry run");
    }
    sides.walked = walked.get();
    sides.other = target.router.get();
    sides.other_caps = target.facts->caps;
  }
  // Reverse passes delete from the walked side only: no router, and the gate passes through.
  CheckpointGate gate(spec, options, target.router.get(), guard, checkpoint, callbacks);
  if (!spec.reverse) {
    fix.emplace(spec, options, target, gate.callbacks());
    sides.fix = &*fix;
  }
  ShardVerifier verifier(spec, compare, sides, checkpoint, gate.callbacks());
  const Attempt attempt{spec, compare, checkpoint, limiter, cancel, verifier, nullptr, sides.other};
  return gate.Finish(WalkWritingTarget(attempt, gate.callbacks()));
}

// One attempt: connect both sides and copy until done, cancelled or an error.
absl::Status CopyAttempt(const ShardSpec& spec, const CopyOptions& options, Checkpoint& checkpoint,
                         RateLimiter* limiter, const std::atomic<bool>* cancel,
                         const CopyCallbacks& callbacks) {
  TargetGuard guard(&checkpoint.target_nodes);
  FERRY_ASSIGN_OR_RETURN(Target target, OpenTarget(spec, options, guard));
  // Checkpoints are reported once the target's replication offsets cover their writes.
  CheckpointGate gate(spec, options, target.router.get(), guard, checkpoint, callbacks);
  const TargetFacts* facts = target.facts.has_value() ? &*target.facts : nullptr;
  ShardWriter writer(options, target.router.get(), target.expiry, facts, checkpoint,
                     gate.callbacks());
  const Attempt attempt{spec,   options, checkpoint, limiter,
                        cancel, writer,  facts,      target.router.get()};
  return gate.Finish(WalkWritingTarget(attempt, gate.callbacks()));
}

}  // namespace

absl::Status CopyShard(const ShardSpec& spec, const CopyOptions& options, const Checkpoint& resume,
                       RateLimiter* limiter, const std::atomic<bool>* cancel,
                       const CopyCallbacks& callbacks) {
  if (spec.watch) return WatchShard(spec, options, resume, cancel, callbacks);
  const bool rescan = options.live.has_value() && resume.pass > 0;
  if (options.live.has_value() && spec.reverse && !rescan) {
    return absl::InvalidArgumentError("a live job's reverse shards run only in rescan passes");
  }
  Checkpoint checkpoint = resume;
  int failures = 0;
  absl::Duration backoff = options.initial_backoff;
  while (!checkpoint.done) {
    if (Cancelled(cancel)) return absl::CancelledError("copy cancelled");
    const Checkpoint before = checkpoint;
    absl::Status status = rescan
                              ? RescanAttempt(spec, options, checkpoint, limiter, cancel, callbacks)
                          : options.verify.has_value()
                              ? VerifyAttempt(spec, options, checkpoint, limiter, cancel, callbacks)
                              : CopyAttempt(spec, options, checkpoint, limiter, cancel, callbacks);
    if (status.ok()) {
      if (!checkpoint.done) return absl::CancelledError("copy cancelled");
      break;
    }
    if (redis::Classify(status) != redis::ErrorClass::kTransient) return status;
    if (checkpoint.cursor != before.cursor || checkpoint.scanned != before.scanned) {
      failures = 0;  // It moved: a new run of failures starts.
      backoff = options.initial_backoff;
    }
    if (++failures > options.max_retries) {
      return Annotate(status, absl::StrCat("giving up after ", options.max_retries, " retries"));
    }
    FERRY_LOG(Warning) << "shard " << spec.shard_index << " of db " << spec.source_db << ": "
                       << status.message() << "; retrying in " << backoff;
    if (callbacks.on_retry) callbacks.on_retry(status);
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
  return absl::OkStatus();
}

}  // namespace ferry::agent
