#pragma once

// Proves that what a shard wrote is still on the target (DESIGN.md, "Honesty rules"). Each
// target server process is remembered in the shard's checkpoint (planned by the controller's
// preflight, or learned at the first connection to a node found later). A connection that finds
// another run_id at a known address means the node restarted and may have lost what was written
// to it; a node whose evicted_keys grew dropped keys. Both are DATA_LOSS: the shard fails and so
// does the job, rather than end "done" over missing keys.
//
// Failovers: a primary killed before its replicas received the shard's last writes is replaced
// by a replica at another address, which the router then follows; nothing comes back to the old
// address, so run_id alone cannot see the loss. Every node is therefore also remembered by its
// replication history (INFO replication master_replid) and how far into it the shard's writes
// reached (master_repl_offset, read after they were acknowledged: CheckpointGate refreshes it
// before each checkpoint is reported). A promoted replica names its old primary's history in
// master_replid2 and holds it up to second_repl_offset - 1; when that falls short of a
// remembered node's offset, acknowledged writes are gone: DATA_LOSS. A primary that continues
// a remembered history (same master_replid) must be at least as far into it. Whatever INFO
// does not say (an ACL, an old or odd server) is not checked, as for run_id.
//
// Limits: two failovers in a row between two looks (B promoted over A, then C over B before B
// was seen) leave C unjudged against A; a primary that changes history without restarting
// (demoted, copied in full from another, promoted again between two looks) keeps its old
// offset; live watchers have no CheckpointGate: they are judged at their connections, on the
// offsets first read.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/copier.h"
#include "common/redis/connection.h"

namespace ferry::agent {

// Used on the shard's copying thread only.
class TargetGuard {
 public:
  // `nodes` (the checkpoint's target_nodes) must outlive the guard; new nodes are added to it.
  explicit TargetGuard(std::vector<TargetNode>* nodes) : nodes_(nodes) {}

  // Reads the INFO of the target node behind `connection` (on every connection the shard opens
  // to the target, through redis::Router's on_connect; CheckpointGate reads every primary
  // before checkpoints are reported, the shard's last included) and judges it with Observe.
  absl::Status Check(redis::Connection& connection);

  // Check() on what Inspect() read: the comparison alone. DATA_LOSS when the node is another
  // process than the one remembered at its address, when it evicted keys since then, or when it
  // took over a remembered node's history (a promoted replica) without all of what was written
  // there. ABORTED, and interrupted() is true, when it took over from a node marked written
  // whose offset was not read since (MarkWritten): the writes since the last reported
  // checkpoint cannot be judged, and the shard must go back to that checkpoint (CheckpointGate).
  // A node seen for the first time is remembered unless it is a replica (nothing is written to
  // one: a cluster seed that is a replica may restart); a target user that may not run INFO is
  // not checked. A remembered node's offset is refreshed only while it is marked written, so it
  // says where the shard's writes end rather than how far other traffic went.
  absl::Status Observe(const TargetNode& seen);

  // What INFO says of the node behind `connection`: run_id empty when INFO is not permitted;
  // repl_id, repl_offset, repl_id2 and repl_id2_end unknown when INFO replication is refused or
  // lacks them.
  static absl::StatusOr<TargetNode> Inspect(redis::Connection& connection);

  // Observe on what Inspect read of every node that may have acknowledged the shard's writes
  // since the last confirmation (Written()) and of every primary: read after those writes, so
  // the offsets of the nodes it reaches cover them, and their marks end (a mark stays on a node
  // whose history could not be followed: demoted and copied in full from another primary).
  absl::Status Confirm(std::vector<TargetNode> seen);

  // The node at `address` may have acknowledged writes of the shard since its offset was read.
  void MarkWritten(const std::string& address);
  // New primaries are remembered as marked written (the router may write to them before the
  // next checkpoint marks them): set by CheckpointGate, whose reports clear the marks.
  void TrackWrites() { track_writes_ = true; }
  // A checkpoint was confirmed, or the shard went back to one that was: no marks.
  void ClearWritten();
  // Addresses of the nodes marked written.
  std::vector<std::string> Written() const;
  // An Observe returned ABORTED (see there).
  bool interrupted() const { return interrupted_; }

 private:
  TargetNode* Find(const std::string& address);
  // The checks of `seen` against the histories of the nodes remembered elsewhere.
  absl::Status CheckHistories(const TargetNode& seen);
  // Moves `known` (the same process as `seen`) forward in its history, while marked written.
  // Ends the mark inside Confirm only.
  void Refresh(TargetNode& known, const TargetNode& seen);

  std::vector<TargetNode>* nodes_;
  bool track_writes_ = false;
  bool interrupted_ = false;
  bool confirming_ = false;  // Inside Confirm: a refreshed offset ends the node's mark.
};

}  // namespace ferry::agent
