#include "agent/lease_spec.h"

#include "gtest/gtest.h"

namespace ferry::agent {
namespace {

namespace pb = ::ferry::v1;
using redis::SlotRanges;

pb::ControllerMessage::Lease BaseLease() {
  pb::ControllerMessage::Lease lease;
  lease.mutable_source()->set_uri("redis://seed.example:7000");
  lease.mutable_source()->set_password("secret");
  lease.mutable_target()->set_uri("redis://target.example:6379");
  lease.mutable_shard()->set_shard_bits(2);
  lease.mutable_shard()->set_shard_index(3);
  return lease;
}

void AddSlots(pb::ControllerMessage::Lease& lease, int first, int last) {
  pb::SlotRange* range = lease.mutable_shard()->add_slots();
  range->set_first(first);
  range->set_last(last);
}

TEST(SpecFromLeaseTest, StandaloneSourceNodeReplacesTheUriHost) {
  pb::ControllerMessage::Lease lease = BaseLease();
  lease.mutable_shard()->set_source_node("10.0.0.5:6380");
  auto spec = SpecFromLease(lease);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_FALSE(spec->cluster());
  EXPECT_EQ(spec->source.Address(), "10.0.0.5:6380");
  EXPECT_EQ(spec->source.password, "secret");
  EXPECT_EQ(spec->shard_index, 3u);
}

TEST(SpecFromLeaseTest, ClusterShardKeepsTheSeedAndCarriesSlotsSchemeAndReadFrom) {
  pb::ControllerMessage::Lease lease = BaseLease();
  lease.mutable_shard()->set_source_node("10.0.0.5:7001");
  AddSlots(lease, 0, 100);
  AddSlots(lease, 200, 300);
  lease.set_read_from(pb::READ_FROM_REPLICA);
  auto spec = SpecFromLease(lease);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_TRUE(spec->cluster());
  EXPECT_EQ(spec->source.Address(), "seed.example:7000");
  EXPECT_EQ(spec->source_node, "10.0.0.5:7001");
  EXPECT_EQ(spec->slots.Ranges(), (SlotRanges{{0, 100}, {200, 300}}));
  EXPECT_EQ(spec->scheme, redis::ScanScheme::kSingleDict);
  EXPECT_EQ(spec->read_from, ReadFrom::kReplica);
}

TEST(SpecFromLeaseTest, PerSlotShardIsOneRange) {
  pb::ControllerMessage::Lease lease = BaseLease();
  lease.mutable_shard()->set_scan_scheme(pb::SCAN_SCHEME_PER_SLOT);
  AddSlots(lease, 0, 100);
  auto spec = SpecFromLease(lease);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->scheme, redis::ScanScheme::kPerSlot);
  AddSlots(lease, 200, 300);
  EXPECT_EQ(SpecFromLease(lease).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SpecFromLeaseTest, AShardOutsideItsDatabaseIsRefused) {
  pb::ControllerMessage::Lease lease = BaseLease();
  lease.mutable_shard()->set_shard_index(4);
  EXPECT_EQ(SpecFromLease(lease).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CheckpointProtoTest, RoundTripsTheClusterFields) {
  Checkpoint checkpoint;
  checkpoint.cursor = 12345;
  checkpoint.run_id = "abc";
  checkpoint.scanned = true;
  checkpoint.rescan = redis::SlotSet::FromRanges({{5, 9}, {100, 100}});
  checkpoint.node = "127.0.0.1:7003";
  checkpoint.counters.set_copied(7);
  pb::Checkpoint proto;
  CheckpointToProto(checkpoint, &proto);
  ASSERT_EQ(proto.rescan_size(), 2);
  const Checkpoint back = CheckpointFromProto(proto);
  EXPECT_EQ(back.cursor, 12345u);
  EXPECT_EQ(back.run_id, "abc");
  EXPECT_TRUE(back.scanned);
  EXPECT_FALSE(back.done);
  EXPECT_EQ(back.rescan, checkpoint.rescan);
  EXPECT_EQ(back.node, "127.0.0.1:7003");
  EXPECT_EQ(back.counters.copied(), 7u);
}

TEST(CheckpointProtoTest, RoundTripsTheTargetNodesReplicationOffsets) {
  // What the target guard judges a failover by survives an agent restart; an unknown history
  // stays unknown (proto3 has no unset offset: 0 would claim an offset nobody read).
  Checkpoint checkpoint;
  TargetNode& known = checkpoint.target_nodes.emplace_back();
  known.address = "10.0.0.1:6379";
  known.run_id = "aaa";
  known.evicted_keys = 3;
  known.repl_id = "0123456789abcdef0123456789abcdef01234567";
  known.repl_offset = 98765;
  checkpoint.target_nodes.emplace_back().address = "10.0.0.2:6379";
  pb::Checkpoint proto;
  CheckpointToProto(checkpoint, &proto);
  const Checkpoint back = CheckpointFromProto(proto);
  ASSERT_EQ(back.target_nodes.size(), 2u);
  EXPECT_EQ(back.target_nodes[0].run_id, "aaa");
  EXPECT_EQ(back.target_nodes[0].evicted_keys, 3);
  EXPECT_EQ(back.target_nodes[0].repl_id, "0123456789abcdef0123456789abcdef01234567");
  EXPECT_EQ(back.target_nodes[0].repl_offset, 98765);
  EXPECT_TRUE(back.target_nodes[1].repl_id.empty());
  EXPECT_EQ(back.target_nodes[1].repl_offset, -1);
}

}  // namespace
}  // namespace ferry::agent
