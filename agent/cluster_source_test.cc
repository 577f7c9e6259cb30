#include "agent/cluster_source.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::agent {
namespace {

using redis::ClusterNode;
using redis::ClusterTopology;
using redis::SlotRanges;
using redis::SlotSet;
using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

ClusterNode Primary(const std::string& id, int port, SlotRanges slots) {
  ClusterNode node;
  node.id = id;
  node.host = "127.0.0.1";
  node.port = port;
  node.primary = true;
  node.slots = std::move(slots);
  return node;
}

ClusterNode Replica(const std::string& id, int port, const std::string& primary,
                    bool failed = false) {
  ClusterNode node;
  node.id = id;
  node.host = "127.0.0.1";
  node.port = port;
  node.primary_id = primary;
  node.failed = failed;
  return node;
}

// a (7000) 0-5460 with replicas a1, a2; b (7001) 5461-10922 with b1; c (7002) the rest, no
// replica.
ClusterTopology ThreePrimaries() {
  ClusterTopology t;
  t.nodes = {Primary("a", 7000, {{0, 5460}}),
             Primary("b", 7001, {{5461, 10922}}),
             Primary("c", 7002, {{10923, 16383}}),
             Replica("a2", 7004, "a"),
             Replica("a1", 7003, "a"),
             Replica("b1", 7005, "b")};
  return t;
}

TEST(ChooseSourceTest, ThePrimaryServingTheSlots) {
  auto choice = ChooseSource(ThreePrimaries(), SlotSet::FromRanges({{0, 5460}}), "127.0.0.1:7000",
                             "", ReadFrom::kPrimary, 0);
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->owner.id, "a");
  EXPECT_EQ(choice->read.id, "a");
  EXPECT_THAT(choice->group, UnorderedElementsAre("a", "a1", "a2"));
  EXPECT_EQ(choice->owned.Ranges(), (SlotRanges{{0, 5460}}));
  EXPECT_TRUE(choice->foreign.empty());
}

TEST(ChooseSourceTest, SlotsThatMovedAwayAreForeign) {
  ClusterTopology t = ThreePrimaries();
  t.nodes[0].slots = {{0, 4999}};
  t.nodes[1].slots = {{5000, 10922}};
  auto choice = ChooseSource(t, SlotSet::FromRanges({{0, 5460}}), "127.0.0.1:7000", "",
                             ReadFrom::kPrimary, 0);
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->owner.id, "a");
  EXPECT_EQ(choice->owned.Ranges(), (SlotRanges{{0, 4999}}));
  EXPECT_EQ(choice->foreign.Ranges(), (SlotRanges{{5000, 5460}}));
}

TEST(ChooseSourceTest, AfterAFailoverTheNewPrimaryServes) {
  ClusterTopology t = ThreePrimaries();
  t.nodes[0] = Replica("a", 7000, "a1");
  t.nodes[4] = Primary("a1", 7003, {{0, 5460}});
  t.nodes[3].primary_id = "a1";
  auto choice = ChooseSource(t, SlotSet::FromRanges({{0, 5460}}), "127.0.0.1:7000", "",
                             ReadFrom::kPrimary, 0);
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->owner.id, "a1");
  EXPECT_EQ(choice->read.port, 7003);
  EXPECT_THAT(choice->group, UnorderedElementsAre("a1", "a", "a2"));
}

TEST(ChooseSourceTest, ReplicasAreSharedBetweenShardsAndFailedOnesSkipped) {
  const ClusterTopology t = ThreePrimaries();
  const SlotSet slots = SlotSet::FromRanges({{0, 5460}});
  std::vector<std::string> read;
  for (uint64_t spread = 0; spread < 4; ++spread) {
    auto choice = ChooseSource(t, slots, "", "", ReadFrom::kReplica, spread);
    ASSERT_TRUE(choice.ok()) << choice.status();
    EXPECT_EQ(choice->owner.id, "a");
    read.push_back(choice->read.id);
  }
  EXPECT_THAT(read, ElementsAre("a1", "a2", "a1", "a2"));

  ClusterTopology failed = t;
  failed.nodes[4].failed = true;  // a1
  for (uint64_t spread = 0; spread < 2; ++spread) {
    EXPECT_EQ(ChooseSource(failed, slots, "", "", ReadFrom::kReplica, spread)->read.id, "a2");
  }
  // A primary without a replica is read itself.
  EXPECT_EQ(ReadNodeOf(t, t.nodes[2], ReadFrom::kReplica, 0).id, "c");
}

TEST(ChooseSourceTest, MostSlotsWinThenThePlannedNode) {
  const ClusterTopology t = ThreePrimaries();
  // 5451-5460 on a (10 slots), 5461-5480 on b (20 slots).
  EXPECT_EQ(ChooseSource(t, SlotSet::FromRanges({{5451, 5480}}), "127.0.0.1:7000", "",
                         ReadFrom::kPrimary, 0)
                ->owner.id,
            "b");
  // 10 and 10: the node the plan named.
  const SlotSet even = SlotSet::FromRanges({{5451, 5470}});
  EXPECT_EQ(ChooseSource(t, even, "127.0.0.1:7000", "", ReadFrom::kPrimary, 0)->owner.id, "a");
  EXPECT_EQ(ChooseSource(t, even, "127.0.0.1:7001", "", ReadFrom::kPrimary, 0)->owner.id, "b");
}

TEST(ChooseSourceTest, TheNodeOfTheCursorIsKeptWhileItServesSomeSlots) {
  ClusterTopology t = ThreePrimaries();
  const SlotSet slots = SlotSet::FromRanges({{0, 5460}});
  // Most of the shard's slots moved to c; a still serves some: keep its cursor.
  t.nodes[0].slots = {{5000, 5460}};
  t.nodes[2].slots = {{0, 4999}, {10923, 16383}};
  auto kept = ChooseSource(t, slots, "127.0.0.1:7000", "127.0.0.1:7000", ReadFrom::kPrimary, 0);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->owner.id, "a");
  EXPECT_EQ(kept->foreign.Ranges(), (SlotRanges{{0, 4999}}));
  // Without a cursor: the node serving most of them.
  EXPECT_EQ(ChooseSource(t, slots, "127.0.0.1:7000", "", ReadFrom::kPrimary, 0)->owner.id, "c");
  // Reading replicas: a2 (whose primary still serves some) stays, whatever the spread says.
  auto replica = ChooseSource(t, slots, "127.0.0.1:7000", "127.0.0.1:7004", ReadFrom::kReplica, 0);
  ASSERT_TRUE(replica.ok());
  EXPECT_EQ(replica->owner.id, "a");
  EXPECT_EQ(replica->read.id, "a2");
  // Reading primaries, a replica's cursor is not kept: a was demoted, a1 serves now.
  ClusterTopology failed_over = ThreePrimaries();
  failed_over.nodes[0] = Replica("a", 7000, "a1");
  failed_over.nodes[4] = Primary("a1", 7003, {{0, 5460}});
  auto moved =
      ChooseSource(failed_over, slots, "127.0.0.1:7000", "127.0.0.1:7000", ReadFrom::kPrimary, 0);
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(moved->read.id, "a1");
}

TEST(ChooseSourceTest, UnservedSlotsAreUnavailable) {
  ClusterTopology t = ThreePrimaries();
  t.nodes[0].slots.clear();
  auto choice =
      ChooseSource(t, SlotSet::FromRanges({{0, 100}}), "127.0.0.1:7000", "", ReadFrom::kPrimary, 0);
  EXPECT_EQ(choice.status().code(), absl::StatusCode::kUnavailable);
}

TEST(MovedAwayTest, OnlySlotsThatLeftTheGroup) {
  const std::vector<std::string> group = {"a", "a1", "a2"};
  const SlotSet owned = SlotSet::FromRanges({{0, 5460}});
  ClusterTopology now = ThreePrimaries();
  EXPECT_TRUE(MovedAway(now, owned, group).empty());
  // A failover inside the group keeps the data.
  now.nodes[0] = Replica("a", 7000, "a1");
  now.nodes[4] = Primary("a1", 7003, {{0, 99}, {201, 5459}});
  now.nodes[1].slots = {{100, 200}, {5461, 10922}};  // Migrated to b.
  // 5460 is served by nobody.
  EXPECT_EQ(MovedAway(now, owned, group).Ranges(), (SlotRanges{{100, 200}, {5460, 5460}}));
}

TEST(MigratingSlotsTest, OnlyTheNodesOwnOutgoingSlots) {
  const char* nodes =
      "07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004 slave "
      "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected\n"
      "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 "
      "connected 0-5460 [93->-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f] "
      "[1002-<-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1] [5000->-67ed2db8d677e59ec4a4cefb]\n"
      "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 "
      "2 connected 5461-10922 [6000->-e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca]\n";
  EXPECT_EQ(MigratingSlots(nodes).Ranges(), (SlotRanges{{93, 93}, {5000, 5000}}));
  EXPECT_TRUE(MigratingSlots("").empty());
}

}  // namespace
}  // namespace ferry::agent
