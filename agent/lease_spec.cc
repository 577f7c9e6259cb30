#include "agent/lease_spec.h"

#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "proto/wire/endpoint.h"
#include "proto/wire/shard.h"

namespace ferry::agent {
namespace {

namespace pb = ::ferry::v1;

void SlotsToProto(const redis::SlotSet& slots,
                  google::protobuf::RepeatedPtrField<pb::SlotRange>* out) {
  for (const auto& [first, last] : slots.Ranges()) {
    pb::SlotRange* range = out->Add();
    range->set_first(first);
    range->set_last(last);
  }
}

redis::SlotSet SlotsFromProto(const google::protobuf::RepeatedPtrField<pb::SlotRange>& ranges) {
  redis::SlotSet slots;
  for (const pb::SlotRange& range : ranges) slots.AddRange(range.first(), range.last());
  return slots;
}

absl::StatusOr<redis::Endpoint> EndpointOf(const pb::EndpointSpec& spec, absl::string_view side) {
  absl::StatusOr<redis::Endpoint> endpoint = wire::EndpointFromSpec(spec);
  if (!endpoint.ok()) return Annotate(endpoint.status(), side);
  return endpoint;
}

// Points `endpoint` at `node` (`host:port` or `[v6]:port`), a cluster master of the source.
absl::Status SetNode(absl::string_view node, redis::Endpoint& endpoint) {
  const std::optional<redis::HostPort> address = redis::ParseAddress(node);
  if (!address.has_value() || address->host.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("source node '", node, "' is not host:port"));
  }
  endpoint.host = address->host;
  endpoint.port = address->port;
  return absl::OkStatus();
}

}  // namespace

void CheckpointToProto(const Checkpoint& c, pb::Checkpoint* out) {
  out->set_cursor(c.cursor);
  out->set_done(c.done);
  out->set_run_id(c.run_id);
  *out->mutable_counters() = c.counters;
  out->set_scanned(c.scanned);
  SlotsToProto(c.rescan, out->mutable_rescan());
  out->set_node(c.node);
  out->set_pass(c.pass);
  *out->mutable_live() = c.live;
  for (const TargetNode& node : c.target_nodes) {
    pb::TargetNode& n = *out->add_target_nodes();
    n.set_address(node.address);
    n.set_run_id(node.run_id);
    n.set_evicted_keys(node.evicted_keys);
    if (!node.repl_id.empty()) {
      n.set_repl_id(node.repl_id);
      n.set_repl_offset(node.repl_offset);
    }
  }
}

Checkpoint CheckpointFromProto(const pb::Checkpoint& c) {
  Checkpoint out;
  out.cursor = c.cursor();
  out.done = c.done();
  out.run_id = c.run_id();
  out.counters = c.counters();
  out.scanned = c.scanned();
  out.rescan = SlotsFromProto(c.rescan());
  out.node = c.node();
  out.pass = c.pass();
  out.live = c.live();
  for (const pb::TargetNode& node : c.target_nodes()) {
    TargetNode& n = out.target_nodes.emplace_back();
    n.address = node.address();
    n.run_id = node.run_id();
    n.evicted_keys = node.evicted_keys();
    // proto3 has no "unset" for the offset: it means something only with a history.
    if (!node.repl_id().empty()) {
      n.repl_id = node.repl_id();
      n.repl_offset = node.repl_offset();
    }
  }
  return out;
}

absl::StatusOr<ShardSpec> SpecFromLease(const pb::ControllerMessage::Lease& lease) {
  const pb::ShardRef& shard = lease.shard();
  ShardSpec spec;
  FERRY_ASSIGN_OR_RETURN(spec.source, EndpointOf(lease.source(), "source"));
  FERRY_ASSIGN_OR_RETURN(spec.target, EndpointOf(lease.target(), "target"));
  // A reverse shard (verify jobs) walks the target and looks its keys up on the source.
  spec.reverse = shard.reverse();
  spec.watch = shard.watch();
  if (spec.reverse) std::swap(spec.source, spec.target);
  spec.slots = SlotsFromProto(shard.slots());
  if (spec.cluster()) {
    // The source URI stays the way into the cluster; the copier finds the slots' node.
    spec.source_node = shard.source_node();
    spec.scheme = wire::ScanSchemeFromProto(shard.scan_scheme());
    spec.read_from =
        lease.read_from() == pb::READ_FROM_REPLICA ? ReadFrom::kReplica : ReadFrom::kPrimary;
    if (spec.scheme == redis::ScanScheme::kPerSlot && spec.slots.Ranges().size() != 1) {
      return absl::InvalidArgumentError("a per-slot shard must be one slot range");
    }
  } else if (!shard.source_node().empty()) {
    FERRY_RETURN_IF_ERROR(SetNode(shard.source_node(), spec.source));
  }
  if (!spec.watch && (shard.shard_bits() < 0 || shard.shard_bits() > 32 ||
                      shard.shard_index() >= (uint64_t{1} << shard.shard_bits()))) {
    return absl::InvalidArgumentError(absl::StrCat("shard ", shard.shard_index(), " of 2^",
                                                   shard.shard_bits(), " does not exist"));
  }
  spec.source_db = shard.source_db();
  spec.target_db = shard.target_db();
  spec.shard_bits = shard.shard_bits();
  spec.shard_index = shard.shard_index();
  spec.match = lease.match();
  spec.type = lease.type();
  return spec;
}

CopyOptions CopyOptionsFromLease(const CopyOptions& defaults,
                                 const pb::ControllerMessage::Lease& lease) {
  CopyOptions copy = defaults;
  if (lease.batch_keys() > 0) copy.batch_keys = lease.batch_keys();
  switch (lease.on_conflict()) {
    case pb::ON_CONFLICT_SKIP:
      copy.on_conflict = OnConflict::kSkip;
      break;
    case pb::ON_CONFLICT_FAIL:
      copy.on_conflict = OnConflict::kFail;
      break;
    default:
      copy.on_conflict = OnConflict::kReplace;
  }
  copy.dry_run = lease.dry_run();
  copy.typed_only = lease.copy_path() == pb::COPY_PATH_TYPED;
  if (lease.big_key_bytes() > 0) copy.big_key_bytes = lease.big_key_bytes();
  copy.drop_field_ttls = lease.drop_field_ttls();
  if (lease.kind() == pb::JOB_KIND_VERIFY) {
    VerifyOptions& verify = copy.verify.emplace();
    verify.full = lease.verify_mode() == pb::VERIFY_MODE_FULL;
    if (lease.ttl_tolerance_ms() > 0) {
      verify.ttl_tolerance = absl::Milliseconds(lease.ttl_tolerance_ms());
    }
  }
  if (lease.live_dirty_bytes() > 0) copy.live.emplace().dirty_bytes = lease.live_dirty_bytes();
  if (copy.connect.client_name.empty()) copy.connect.client_name = "ferry-agent";
  return copy;
}

std::string DescribeLease(const pb::ControllerMessage::Lease& lease, const ShardSpec& spec) {
  const std::string slots =
      spec.cluster()
          ? absl::StrCat(" slots ", redis::FormatSlotRanges(spec.slots.Ranges()), " (",
                         redis::ScanSchemeName(spec.scheme), ", planned on ", spec.source_node, ")")
          : "";
  const char* what =
      spec.watch ? "watch: "
      : lease.kind() != pb::JOB_KIND_VERIFY
          ? (lease.resume().pass() > 0 ? (spec.reverse ? "rescan extra keys: " : "rescan: ") : "")
      : spec.reverse ? "verify extra keys: "
                     : "verify: ";
  const std::string shard =
      spec.watch ? ""
                 : absl::StrCat(" shard ", spec.shard_index, "/", uint64_t{1} << spec.shard_bits);
  return absl::StrCat("lease ", lease.lease_id(), " (job ", lease.job_id(), ", epoch ",
                      lease.epoch(), "): ", what, spec.source.Redacted(), " db ", spec.source_db,
                      shard, slots, " -> ", spec.target.Redacted(), " db ", spec.target_db);
}

}  // namespace ferry::agent
