#pragma once

// A live job's watch lease (ShardSpec.watch; DESIGN.md, "Live sync without lost writes"): follows
// one source node's (cluster: the nodes serving the shard's slots') keyspace notifications for
// one database and keeps the target current, on the lease's thread alone.
//
// A subscription: CONFIG GET notify-keyspace-events must show K and every class of A (where
// CONFIG answers), then PSUBSCRIBE __keyspace@<db>__:<match or *> (plus the cutover markers'
// pattern when MATCH narrows it) on a connection of its own; once confirmed the checkpoint says
// subscribed, and only then does the controller lease the node's snapshot shards.
// Each event marks its key in a DirtySet. While LiveSignals.apply, the oldest dirty keys are
// taken in batches, their marks cleared first, read from the source now and written (KeySync):
// a write after that read is a new event. The subscriber socket is drained before each batch.
//
// A gap is any way events could have been lost: the subscriber's connection failed or was closed
// (CLIENT KILL, client-output-buffer-limit pubsub), the node's run_id changed, the slots moved
// or failed over (cluster topology, every second), the dirty set overflowed, FLUSHDB, FLUSHALL
// or SWAPDB ran (INFO commandstats, every second; a counter that went down counts too) or the
// database emptied with fewer key events than it had keys (INFO keyspace), a batch failed after
// its marks were cleared. Then the checkpoint says not subscribed, gaps + 1 and the reason; the
// dirty set is dropped (the controller's rescan pass covers it); the watcher subscribes again
// with backoff and waits, before applying, for the controller to turn apply off and on again
// around that pass.
//
// Cutover (LiveSignals.cutover_seq above the last one done): a marker is published on every
// watched node to a channel the subscription matches (or, where PUBLISH is refused, a marker key
// SET with a 60 s TTL); once each node's marker came back, every event before it has arrived;
// when every key marked until then is applied (and at least kCutoverQuiet after the markers), the
// checkpoint reports cutover_seq and the key events that arrived after the markers (0: the
// writers had stopped).

#include <atomic>

#include "absl/status/status.h"
#include "agent/copier.h"

namespace ferry::agent {

// Runs a watch lease until `cancel` (CANCELLED, as CopyShard after a stop) or a fatal error:
// notifications not configured (FAILED_PRECONDITION), PSUBSCRIBE refused (PERMISSION_DENIED),
// the target lost writes (DATA_LOSS), auth, OOM. Gaps are not errors. `options.live` must be
// set; without signals nothing is applied. Checkpoints (LiveStatus in Checkpoint.live) go to
// callbacks.on_checkpoint after each batch and at least every 500 ms.
absl::Status WatchShard(const ShardSpec& spec, const CopyOptions& options, const Checkpoint& resume,
                        const std::atomic<bool>* cancel, const CopyCallbacks& callbacks);

}  // namespace ferry::agent
