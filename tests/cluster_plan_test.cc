// The planner (preflight and shard plan) against real Redis Cluster nodes: shards per primary
// sized by that node's own key count, the cursor scheme detected on the nodes, replicas chosen
// for reading, and the database rules of a cluster target.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/redis/router.h"
#include "common/redis/slot.h"
#include "common/testing/redis_cluster.h"
#include "common/testing/redis_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/wire/shard.h"
#include "server/planner.h"

namespace ferry::server {
namespace {

using ::ferry::testing::RedisCluster;
using ::ferry::testing::RedisServer;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

// The scheme a node of this version must be planned with, from its version alone.
redis::ScanScheme ExpectedScheme(const std::string& redis_version) {
  int major = 0;
  int minor = 0;
  const size_t dot = redis_version.find('.');
  EXPECT_TRUE(absl::SimpleAtoi(redis_version.substr(0, dot), &major));
  EXPECT_TRUE(absl::SimpleAtoi(redis_version.substr(dot + 1, 1), &minor));
  return major > 7 || (major == 7 && minor >= 3) ? redis::ScanScheme::kPerSlot
                                                 : redis::ScanScheme::kSingleDict;
}

// SET `count` keys whose slot is `slot`, through a router.
void FillSlot(const RedisCluster& cluster, int slot, int count) {
  std::string tag;
  for (int i = 0; tag.empty(); ++i) {
    if (redis::KeySlot(absl::StrCat("t", i)) == slot) tag = absl::StrCat("t", i);
  }
  auto router = redis::Router::Open(cluster.endpoint(), 0, {});
  ASSERT_TRUE(router.ok()) << router.status();
  std::vector<std::string> keys;
  keys.reserve(count);
  for (int i = 0; i < count; ++i) {
    keys.push_back(absl::StrCat("{", tag, "}:", i));
    (*router)->Add({"SET", keys.back(), "v"});
    if ((*router)->queued() == 1000 || i + 1 == count) {
      ASSERT_TRUE((*router)->Execute().ok());
    }
  }
}

class ClusterPlanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing::RequireRedisServerBinary().ok()) << testing::RequireRedisServerBinary();
  }
  static std::unique_ptr<RedisCluster> StartCluster(int primaries, int replicas) {
    auto cluster = RedisCluster::Start(primaries, replicas);
    EXPECT_TRUE(cluster.ok()) << cluster.status();
    return cluster.ok() ? *std::move(cluster) : nullptr;
  }
  static PlanRequest Request(const redis::Endpoint& source, const redis::Endpoint& target) {
    PlanRequest request;
    request.source = source;
    request.target = target;
    return request;
  }
};

TEST_F(ClusterPlanTest, ShardsPerPrimaryFromItsOwnKeyCountInTheNodesScheme) {
  auto source = StartCluster(3, 1);
  auto target = RedisServer::Start();
  ASSERT_TRUE(source && target.ok());
  FillSlot(*source, 100, 70000);   // Node 0: 70000 keys, 4 shards of 16k.
  FillSlot(*source, 6000, 1000);   // Node 1: one shard.
  FillSlot(*source, 12000, 1000);  // Node 2: one shard.
  auto plan = PlanCopy(Request(source->endpoint(), (*target)->endpoint()));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->estimated_keys, 72000u);
  ASSERT_THAT(plan->shards, SizeIs(6));
  auto topology = source->Topology();
  ASSERT_TRUE(topology.ok());
  for (int node = 0; node < 3; ++node) {
    const std::string address = absl::StrCat("127.0.0.1:", source->node(node).port());
    auto info = source->node(node).Connect()->Command({"INFO", "server"});
    ASSERT_TRUE(info.ok());
    const redis::ScanScheme scheme = ExpectedScheme(redis::InfoField(info->str(), "redis_version"));
    const redis::ClusterNode* owner = topology->OwnerOf(node * 5461);
    ASSERT_NE(owner, nullptr);
    int shards = 0;
    for (const ferry::v1::ShardRef& shard : plan->shards) {
      if (shard.source_node() != address) continue;
      ++shards;
      EXPECT_EQ(wire::ScanSchemeFromProto(shard.scan_scheme()), scheme) << address;
      EXPECT_EQ(shard.source_db(), 0);
      EXPECT_EQ(shard.target_db(), 0);
      if (scheme == redis::ScanScheme::kSingleDict) {
        EXPECT_EQ(wire::SlotRangesFromProto(shard.slots()), owner->slots);
      }
    }
    EXPECT_EQ(shards, node == 0 ? 4 : 1) << address;
  }
  EXPECT_THAT(plan->warnings, IsEmpty());
}

TEST_F(ClusterPlanTest, ReadingReplicasWarnsAboutPrimariesWithout) {
  auto with = StartCluster(3, 1);
  auto without = StartCluster(3, 0);
  auto target = RedisServer::Start();
  ASSERT_TRUE(with && without && target.ok());
  FillSlot(*with, 1, 10);
  FillSlot(*without, 1, 10);
  PlanRequest request = Request(with->endpoint(), (*target)->endpoint());
  request.read_from_replicas = true;
  auto plan = PlanCopy(request);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(plan->warnings, IsEmpty());
  request.source = without->endpoint();
  plan = PlanCopy(request);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_THAT(plan->warnings, SizeIs(3));
  EXPECT_THAT(plan->warnings[0], HasSubstr("has no healthy replica"));
}

TEST_F(ClusterPlanTest, DatabasesIntoACluster) {
  auto source = RedisServer::Start();
  auto target = StartCluster(3, 0);
  ASSERT_TRUE(source.ok() && target);
  for (int db : {0, 1, 4}) {
    auto conn = (*source)->Connect(db);
    ASSERT_TRUE(conn.ok() && conn->Command({"SET", "k", "v"}).ok());
  }
  PlanRequest request = Request((*source)->endpoint(), target->endpoint());
  auto refused = PlanCopy(request);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("has only db 0"));
  EXPECT_THAT(refused.status().message(), HasSubstr("(0, 1, 4)"));

  request.dbs = {4};
  auto one = PlanCopy(request);
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_THAT(one->shards, SizeIs(1));
  EXPECT_EQ(one->shards[0].source_db(), 4);
  EXPECT_EQ(one->shards[0].target_db(), 0);

  request.dbs.clear();
  request.merge_dbs = true;
  auto merged = PlanCopy(request);
  ASSERT_TRUE(merged.ok()) << merged.status();
  ASSERT_THAT(merged->shards, SizeIs(3));
  for (const ferry::v1::ShardRef& shard : merged->shards) EXPECT_EQ(shard.target_db(), 0);

  request.target_db = 2;
  EXPECT_EQ(PlanCopy(request).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ClusterPlanTest, RefusesOtherDatabasesOfAClusterAndTheSourceAsTarget) {
  auto cluster = StartCluster(3, 0);
  auto other = RedisServer::Start();
  ASSERT_TRUE(cluster && other.ok());
  FillSlot(*cluster, 1, 10);
  PlanRequest request = Request(cluster->endpoint(), (*other)->endpoint());
  request.dbs = {2};
  EXPECT_EQ(PlanCopy(request).status().code(), absl::StatusCode::kInvalidArgument);
  request.dbs.clear();
  request.target = cluster->node(1).endpoint();
  auto same = PlanCopy(request);
  EXPECT_EQ(same.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(same.status().message(), HasSubstr("the source itself"));
}

}  // namespace
}  // namespace ferry::server
