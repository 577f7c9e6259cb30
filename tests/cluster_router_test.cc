// Cluster topology discovery, the Router (standalone and cluster, through resharding and
// failovers) and the RedisCluster fixture, against real redis-server processes.

#include <algorithm>
#include <atomic>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/redis/cluster.h"
#include "common/redis/router.h"
#include "common/redis/slot.h"
#include "common/testing/compare.h"
#include "common/testing/redis_cluster.h"
#include "common/testing/redis_server.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::testing {
namespace {

using ::testing::IsEmpty;
using ::testing::SizeIs;

std::unique_ptr<RedisCluster> StartCluster(int primaries, int replicas) {
  EXPECT_TRUE(RequireRedisServerBinary().ok()) << RequireRedisServerBinary();
  absl::StatusOr<std::unique_ptr<RedisCluster>> cluster = RedisCluster::Start(primaries, replicas);
  EXPECT_TRUE(cluster.ok()) << cluster.status();
  return cluster.ok() ? *std::move(cluster) : nullptr;
}

std::string Describe(const redis::RouterStats& stats) {
  return absl::StrCat("moved=", stats.moved, " ask=", stats.ask, " transient=", stats.transient,
                      " connection_errors=", stats.connection_errors,
                      " refreshes=", stats.refreshes);
}

// Sets every key of `batch` to its value through `router`; every reply must be OK.
absl::Status SetAll(redis::Router& router, const std::map<std::string, std::string>& batch) {
  for (const auto& [key, value] : batch) router.Add({"SET", key, value});
  absl::StatusOr<std::vector<redis::Reply>> replies = router.Execute();
  if (!replies.ok()) return replies.status();
  for (const redis::Reply& reply : *replies) {
    if (reply.str() != "OK") return absl::InternalError(absl::StrCat("SET: ", reply.str()));
  }
  return absl::OkStatus();
}

// Reads every key of `expected` back through `router`; returns the keys whose value differs.
absl::StatusOr<std::vector<std::string>> WrongKeys(
    redis::Router& router, const std::map<std::string, std::string>& expected) {
  for (const auto& entry : expected) router.Add({"GET", entry.first});
  absl::StatusOr<std::vector<redis::Reply>> replies = router.Execute();
  if (!replies.ok()) return replies.status();
  std::vector<std::string> wrong;
  size_t i = 0;
  for (const auto& [key, value] : expected) {
    if ((*replies)[i].is_nil() || (*replies)[i].str() != value) wrong.push_back(key);
    ++i;
  }
  return wrong;
}

// ---------------------------------------------------------------- topology

TEST(ClusterTopologyTest, ThreePrimariesWithOneReplicaEach) {
  std::unique_ptr<RedisCluster> cluster = StartCluster(3, 1);
  ASSERT_NE(cluster, nullptr);
  ASSERT_OK_AND_ASSIGN(redis::Connection conn, cluster->seed().Connect());
  EXPECT_TRUE(redis::IsClusterEnabled(conn));
  ASSERT_OK_AND_ASSIGN(redis::ClusterTopology topology, redis::DiscoverTopology(conn));

  ASSERT_THAT(topology.nodes, SizeIs(6));
  ASSERT_THAT(topology.Primaries(), SizeIs(3));
  EXPECT_EQ(topology.CoveredSlots(), redis::kClusterSlots);
  std::set<int> ports;
  for (const auto& server : cluster->nodes()) ports.insert(server->port());
  for (const redis::ClusterNode& node : topology.nodes) {
    EXPECT_EQ(node.host, "127.0.0.1");
    EXPECT_EQ(ports.count(node.port), 1u) << node.port;
    EXPECT_FALSE(node.failed);
  }
  int slots = 0;
  for (const redis::ClusterNode* primary : topology.Primaries()) {
    for (const auto& [first, last] : primary->slots) slots += last - first + 1;
    ASSERT_THAT(topology.ReplicasOf(primary->id), SizeIs(1)) << primary->id;
    EXPECT_FALSE(topology.ReplicasOf(primary->id)[0]->primary);
  }
  EXPECT_EQ(slots, redis::kClusterSlots);  // No slot owned twice.
  // Nodes 0..2 were given the slot ranges in order; 3..5 follow them.
  ASSERT_NE(topology.OwnerOf(0), nullptr);
  EXPECT_EQ(topology.OwnerOf(0)->id, cluster->node_id(0));
  EXPECT_EQ(topology.OwnerOf(16383)->id, cluster->node_id(2));
  EXPECT_EQ(topology.ReplicasOf(cluster->node_id(1))[0]->id, cluster->node_id(4));
  const redis::Endpoint endpoint = redis::NodeEndpoint(cluster->endpoint(), *topology.OwnerOf(0));
  EXPECT_EQ(endpoint.port, cluster->node(0).port());

  // The CLUSTER SLOTS parser (older servers) sees the same cluster.
  ASSERT_OK_AND_ASSIGN(redis::Reply slots_reply, conn.Command({"CLUSTER", "SLOTS"}));
  ASSERT_OK_AND_ASSIGN(redis::ClusterTopology from_slots,
                       redis::TopologyFromSlots(slots_reply, "127.0.0.1"));
  ASSERT_EQ(from_slots.nodes.size(), topology.nodes.size());
  for (size_t i = 0; i < topology.nodes.size(); ++i) {
    const redis::ClusterNode& a = topology.nodes[i];
    const redis::ClusterNode& b = from_slots.nodes[i];
    EXPECT_EQ(std::tie(a.id, a.host, a.port, a.primary, a.primary_id, a.slots),
              std::tie(b.id, b.host, b.port, b.primary, b.primary_id, b.slots));
  }
}

TEST(ClusterTopologyTest, StandaloneIsNotACluster) {
  ASSERT_OK(RequireRedisServerBinary());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> server, RedisServer::Start());
  ASSERT_OK_AND_ASSIGN(redis::Connection conn, server->Connect());
  EXPECT_FALSE(redis::IsClusterEnabled(conn));
  // INFO refused: CLUSTER MYID decides.
  RedisServerOptions options;
  options.rename_commands = {{"INFO", ""}};
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> no_info, RedisServer::Start(options));
  ASSERT_OK_AND_ASSIGN(redis::Connection no_info_conn, no_info->Connect());
  ASSERT_OK_AND_ASSIGN(bool cluster, redis::DetectClusterMode(no_info_conn));
  EXPECT_FALSE(cluster);
}

// ---------------------------------------------------------------- router, standalone

TEST(RouterStandaloneTest, BehavesLikeAPipelineInItsDb) {
  ASSERT_OK(RequireRedisServerBinary());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> server, RedisServer::Start());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<redis::Router> router,
                       redis::Router::Open(server->endpoint(), 3, {}));
  EXPECT_FALSE(router->cluster());
  EXPECT_EQ(router->nodes(), 1u);
  const std::string value("bin\0value\r\n", 11);
  router->Add({"SET", "a", "1"});
  router->Add({"INCR", "a"});
  router->Add({"SET", "b", value});
  router->Add({"INCR", "b"});  // An error reply, returned in its slot.
  router->Add({"GET", "b"});
  router->Add({"GET", "missing"});
  ASSERT_OK_AND_ASSIGN(std::vector<redis::Reply> replies, router->Execute());
  ASSERT_THAT(replies, SizeIs(6));
  EXPECT_EQ(replies[0].str(), "OK");
  EXPECT_EQ(replies[1].integer(), 2);
  EXPECT_TRUE(replies[3].is_error());
  EXPECT_EQ(replies[4].str(), value);
  EXPECT_TRUE(replies[5].is_nil());
  EXPECT_EQ(router->queued(), 0u);

  ASSERT_OK_AND_ASSIGN(redis::Connection db3, server->Connect(3));
  EXPECT_EQ(db3.Command({"GET", "a"})->str(), "2");
  ASSERT_OK_AND_ASSIGN(redis::Connection db0, server->Connect(0));
  EXPECT_EQ(db0.Command({"DBSIZE"})->integer(), 0);
}

TEST(RouterStandaloneTest, ReconnectsAfterARestartAndGivesUpWhenTheServerIsGone) {
  ASSERT_OK(RequireRedisServerBinary());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> server, RedisServer::Start());
  redis::RouterRetryPolicy retry;
  retry.max_duration = absl::Milliseconds(500);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<redis::Router> router,
                       redis::Router::Open(server->endpoint(), 2, {}, retry));
  ASSERT_OK(SetAll(*router, {{"k1", "v1"}}));

  ASSERT_OK(server->Restart(/*keep_data=*/false));
  ASSERT_OK(SetAll(*router, {{"k2", "v2"}}));  // The old connection is dead: reopened in db 2.
  ASSERT_OK_AND_ASSIGN(redis::Connection db2, server->Connect(2));
  EXPECT_EQ(db2.Command({"GET", "k2"})->str(), "v2");
  EXPECT_GE(router->stats().connection_errors, 1u);

  server->Kill();
  router->Add({"SET", "k3", "v3"});
  const absl::Time start = absl::Now();
  absl::StatusOr<std::vector<redis::Reply>> replies = router->Execute();
  EXPECT_EQ(replies.status().code(), absl::StatusCode::kUnavailable) << replies.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(router->queued(), 0u);
}

TEST(RouterStandaloneTest, ABeforeExecuteErrorIsTheResultAndNothingIsSent) {
  ASSERT_OK(RequireRedisServerBinary());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> server, RedisServer::Start());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<redis::Router> router,
                       redis::Router::Open(server->endpoint(), 0, {}));
  absl::Status verdict = absl::DataLossError("written data is gone");
  router->set_before_execute([&verdict] { return verdict; });
  router->Add({"SET", "k", "v"});
  EXPECT_EQ(router->Execute().status(), verdict);
  EXPECT_EQ(router->queued(), 0u);
  ASSERT_OK_AND_ASSIGN(redis::Connection db0, server->Connect(0));
  EXPECT_EQ(db0.Command({"DBSIZE"})->integer(), 0);
  verdict = absl::OkStatus();
  ASSERT_OK(SetAll(*router, {{"k", "v"}}));
  EXPECT_EQ(db0.Command({"DBSIZE"})->integer(), 1);
}

// ---------------------------------------------------------------- router, cluster

TEST(RouterClusterTest, RefusesADbOtherThanZero) {
  std::unique_ptr<RedisCluster> cluster = StartCluster(3, 0);
  ASSERT_NE(cluster, nullptr);
  absl::StatusOr<std::unique_ptr<redis::Router>> router =
      redis::Router::Open(cluster->endpoint(), 1, {});
  EXPECT_EQ(router.status().code(), absl::StatusCode::kInvalidArgument) << router.status();
}

TEST(RouterClusterTest, EveryKeyLandsOnItsOwningNode) {
  std::unique_ptr<RedisCluster> cluster = StartCluster(3, 0);
  ASSERT_NE(cluster, nullptr);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<redis::Router> router,
                       redis::Router::Open(cluster->endpoint(), 0, {}));
  EXPECT_TRUE(router->cluster());
  EXPECT_EQ(router->nodes(), 3u);

  std::map<std::string, std::string> data;
  for (int i = 0; i < 15000; ++i) data[absl::StrCat("key:", i)] = absl::StrCat("v", i);
  for (int i = 0; i < 5000; ++i) data[absl::StrCat("{user", i % 50, "}:", i)] = absl::StrCat(i);
  ASSERT_OK(SetAll(*router, data));
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> wrong, WrongKeys(*router, data));
  EXPECT_THAT(wrong, IsEmpty());  // Also proves the replies come back in add order.
  EXPECT_EQ(router->stats().moved, 0u) << Describe(router->stats());

  // Each primary holds exactly the keys of its slots.
  ASSERT_OK_AND_ASSIGN(redis::ClusterTopology topology, cluster->Topology());
  size_t total = 0;
  for (const redis::ClusterNode* primary : topology.Primaries()) {
    ASSERT_OK_AND_ASSIGN(redis::Connection conn, redis::Connection::Open(redis::NodeEndpoint(
                                                     cluster->endpoint(), *primary)));
    std::string cursor = "0";
    do {
      ASSERT_OK_AND_ASSIGN(redis::Reply page, conn.Command({"SCAN", cursor, "COUNT", "1000"}));
      cursor = std::string(page.element(0).str());
      for (size_t i = 0; i < page.element(1).size(); ++i) {
        const std::string key(page.element(1).element(i).str());
        EXPECT_EQ(topology.OwnerOf(redis::KeySlot(key))->id, primary->id) << key;
        ++total;
      }
    } while (cursor != "0");
  }
  EXPECT_EQ(total, data.size());
}

// Counts what a router's connections tell (the agent's metrics are one such observer).
class CountingObserver : public redis::IoObserver {
 public:
  void RoundTrip(absl::Duration elapsed) override {
    ++round_trips;
    if (elapsed < absl::ZeroDuration()) ++negative;
  }
  void Retry(redis::RetryReason reason) override { ++retries[static_cast<int>(reason)]; }
  uint64_t round_trips = 0;
  uint64_t negative = 0;
  uint64_t retries[4] = {};
};

TEST(RouterClusterTest, KeepsWritingWhileSlotsAreResharded) {
  std::unique_ptr<RedisCluster> cluster = StartCluster(3, 0);
  ASSERT_NE(cluster, nullptr);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<redis::Router> router,
                       redis::Router::Open(cluster->endpoint(), 0, {}));
  // Opened before the reshard and used only after it: its slot map is stale for sure.
  CountingObserver observer;
  redis::ConnectOptions observed;
  observed.observer = &observer;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<redis::Router> stale,
                       redis::Router::Open(cluster->endpoint(), 0, observed));
  std::map<std::string, std::string> expected;
  for (int i = 0; i < 20000; ++i) expected[absl::StrCat("pre:", i)] = absl::StrCat("v", i);
  ASSERT_OK(SetAll(*router, expected));

  ASSERT_OK_AND_ASSIGN(Subprocess reshard, cluster->Reshard(2000, 0, 1));
  int batches = 0;
  for (int n = 0; !reshard.TryWait().has_value(); ++n) {
    std::map<std::string, std::string> batch;
    for (int i = 0; i < 500; ++i) {
      batch[absl::StrCat("live:", n, ":", i)] = absl::StrCat(n);
      batch[absl::StrCat("pre:", (n * 500 + i) % 20000)] = absl::StrCat("w", n);  // Overwrites.
    }
    const absl::Status written = SetAll(*router, batch);
    ASSERT_TRUE(written.ok()) << written << "; " << Describe(router->stats());
    for (auto& entry : batch) expected[entry.first] = entry.second;
    ++batches;
  }
  ASSERT_OK_AND_ASSIGN(int code, reshard.Wait(absl::Seconds(1)));
  ASSERT_EQ(code, 0) << FileTail(cluster->tool_log());
  std::cout << "wrote " << batches << " batches during the reshard; " << Describe(router->stats())
            << "\n";

  std::map<std::string, std::string> after;
  for (int i = 0; i < 3000; ++i) after[absl::StrCat("after:", i)] = "x";
  ASSERT_OK(SetAll(*stale, after));
  EXPECT_GT(stale->stats().moved, 0u) << Describe(stale->stats());
  // The observer heard of every resend, by reason, and timed each pipeline.
  EXPECT_EQ(observer.retries[static_cast<int>(redis::RetryReason::kMoved)], stale->stats().moved);
  EXPECT_EQ(observer.retries[static_cast<int>(redis::RetryReason::kAsk)], stale->stats().ask);
  EXPECT_EQ(observer.retries[static_cast<int>(redis::RetryReason::kBusy)],
            stale->stats().transient);
  EXPECT_GE(observer.round_trips, 3u);  // At least one pipeline per primary.
  EXPECT_EQ(observer.negative, 0u);
  expected.insert(after.begin(), after.end());

  ASSERT_OK_AND_ASSIGN(std::vector<std::string> wrong, WrongKeys(*router, expected));
  EXPECT_THAT(wrong, IsEmpty());
  ASSERT_OK_AND_ASSIGN(redis::ClusterTopology topology, cluster->Topology());
  EXPECT_EQ(topology.OwnerOf(0)->id, cluster->node_id(1));  // The moved slots start at 0.
  EXPECT_EQ(topology.CoveredSlots(), redis::kClusterSlots);
}

// Writes batches of new keys through its own Router on a thread until stopped; remembers what
// was acknowledged.
class BackgroundWriter {
 public:
  BackgroundWriter(const redis::Endpoint& seed, const redis::RouterRetryPolicy& retry) {
    auto router = redis::Router::Open(seed, 0, {}, retry);
    EXPECT_TRUE(router.ok()) << router.status();
    if (router.ok()) router_ = *std::move(router);
  }
  ~BackgroundWriter() { Stop(); }

  void Start() {
    thread_ = std::thread([this] {
      for (int n = 0; !stop_; ++n) {
        while (pause_ && !stop_) {
          paused_ = true;
          absl::SleepFor(absl::Milliseconds(1));
        }
        paused_ = false;
        std::map<std::string, std::string> batch;
        for (int i = 0; i < 200; ++i) batch[absl::StrCat("bg:", n, ":", i)] = absl::StrCat(i);
        absl::Status status = SetAll(*router_, batch);
        if (!status.ok()) {
          status_ = status;
          failed_ = true;
          return;
        }
        written_.insert(batch.begin(), batch.end());
        ++batches_;
      }
    });
  }
  // Waits until `more` further batches were acknowledged (or the writer failed).
  bool WaitBatches(int more) {
    const int target = batches_ + more;
    return WaitFor([&] { return batches_ >= target || thread_done(); }, absl::Seconds(60)).ok() &&
           batches_ >= target;
  }
  void Pause() {
    pause_ = true;
    (void)WaitFor([&] { return paused_.load() || thread_done(); }, absl::Seconds(60));
  }
  void Resume() { pause_ = false; }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  bool thread_done() const { return failed_; }

  redis::Router* router() { return router_.get(); }
  // After Stop().
  const absl::Status& status() const { return status_; }
  const std::map<std::string, std::string>& written() const { return written_; }

 private:
  std::unique_ptr<redis::Router> router_;
  std::thread thread_;
  std::atomic<bool> stop_{false}, pause_{false}, paused_{false}, failed_{false};
  std::atomic<int> batches_{0};
  absl::Status status_;
  std::map<std::string, std::string> written_;
};

TEST(RouterClusterTest, SurvivesAManualFailoverMidWrites) {
  std::unique_ptr<RedisCluster> cluster = StartCluster(3, 1);
  ASSERT_NE(cluster, nullptr);
  BackgroundWriter writer(cluster->endpoint(), {});
  ASSERT_NE(writer.router(), nullptr);
  writer.Start();
  // Long enough for the router's initial discovery to leave the refresh rate limit behind.
  ASSERT_TRUE(writer.WaitBatches(100));
  ASSERT_OK_AND_ASSIGN(int promoted, cluster->Failover(0));
  EXPECT_EQ(promoted, 3);
  ASSERT_TRUE(writer.WaitBatches(20));
  writer.Stop();
  ASSERT_OK(writer.status());
  std::cout << Describe(writer.router()->stats()) << "\n";
  EXPECT_GT(writer.router()->stats().moved, 0u);  // The old primary redirected to the new one.

  ASSERT_OK_AND_ASSIGN(std::vector<int> primaries, cluster->PrimaryIndices());
  EXPECT_EQ(primaries, (std::vector<int>{1, 2, 3}));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<redis::Router> reader,
                       redis::Router::Open(cluster->endpoint(), 0, {}));
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> wrong, WrongKeys(*reader, writer.written()));
  EXPECT_THAT(wrong, IsEmpty());
}

TEST(RouterClusterTest, SurvivesAKilledPrimary) {
  std::unique_ptr<RedisCluster> cluster = StartCluster(3, 1);
  ASSERT_NE(cluster, nullptr);
  // Failure detection (cluster-node-timeout 3 s) plus the election take a few seconds.
  redis::RouterRetryPolicy retry;
  retry.max_duration = absl::Seconds(60);
  retry.max_rounds = 1000;
  BackgroundWriter writer(cluster->endpoint(), retry);
  ASSERT_NE(writer.router(), nullptr);
  writer.Start();
  ASSERT_TRUE(writer.WaitBatches(10));
  // Replication is asynchronous: let the replica catch up so no acknowledged write dies with
  // the primary.
  writer.Pause();
  ASSERT_OK_AND_ASSIGN(redis::Connection primary, cluster->node(0).Connect());
  ASSERT_OK_AND_ASSIGN(redis::Reply synced, primary.Command({"WAIT", "1", "5000"}));
  ASSERT_EQ(synced.integer(), 1);
  cluster->node(0).Kill();
  writer.Resume();
  ASSERT_OK(WaitFor(
      [&] {
        auto primaries = cluster->PrimaryIndices();
        return primaries.ok() && *primaries == std::vector<int>{1, 2, 3};
      },
      absl::Seconds(60), absl::Milliseconds(50)));
  ASSERT_TRUE(writer.WaitBatches(20));
  writer.Stop();
  ASSERT_OK(writer.status());
  std::cout << Describe(writer.router()->stats()) << "\n";
  EXPECT_GT(writer.router()->stats().connection_errors, 0u);

  ASSERT_OK(cluster->WaitHealthy());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<redis::Router> reader,
                       redis::Router::Open(cluster->node(1).endpoint(), 0, {}));
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> wrong, WrongKeys(*reader, writer.written()));
  EXPECT_THAT(wrong, IsEmpty());
}

// ---------------------------------------------------------------- comparison helper

TEST(CompareClusterTest, FindsPlantedDifferencesAgainstAStandaloneServer) {
  std::unique_ptr<RedisCluster> cluster = StartCluster(3, 0);
  ASSERT_NE(cluster, nullptr);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisServer> standalone, RedisServer::Start());
  ASSERT_OK_AND_ASSIGN(redis::Connection flat, standalone->Connect());
  ASSERT_OK(LoadMixedData(flat, 0, 2000, /*seed=*/7, /*ttl_fraction=*/0.2));
  // The same data into the cluster, key by key through the router.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<redis::Router> router,
                       redis::Router::Open(cluster->endpoint(), 0, {}));
  std::vector<std::string> keys;
  std::string cursor = "0";
  do {
    ASSERT_OK_AND_ASSIGN(redis::Reply page, flat.Command({"SCAN", cursor, "COUNT", "1000"}));
    cursor = std::string(page.element(0).str());
    for (size_t i = 0; i < page.element(1).size(); ++i) {
      keys.emplace_back(page.element(1).element(i).str());
    }
  } while (cursor != "0");
  // Read everything first: the router keeps views of the arguments until Execute returns.
  std::vector<std::string> ttls;
  std::vector<redis::Reply> dumps;
  for (const std::string& key : keys) {
    ASSERT_OK_AND_ASSIGN(redis::Reply pttl, flat.Command({"PTTL", key}));
    ASSERT_OK_AND_ASSIGN(redis::Reply dump, flat.Command({"DUMP", key}));
    ttls.push_back(absl::StrCat(std::max<int64_t>(pttl.integer(), 0)));
    dumps.push_back(std::move(dump));
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    router->Add({"RESTORE", keys[i], ttls[i], dumps[i].str(), "REPLACE"});
  }
  ASSERT_OK_AND_ASSIGN(std::vector<redis::Reply> restored, router->Execute());
  for (const redis::Reply& reply : restored) ASSERT_EQ(reply.str(), "OK") << reply.str();
  ASSERT_OK_AND_ASSIGN(std::vector<KeyDiff> diffs,
                       CompareClusterWith(*cluster, standalone->endpoint()));
  EXPECT_THAT(diffs, IsEmpty());

  // One key missing on each side and one value changed.
  router->Add({"DEL", keys[0]});
  router->Add({"SET", "only-in-cluster", "x"});
  ASSERT_OK(router->Execute().status());
  // KEEPTTL: only the value changes (a plain SET would also drop a TTL: a fourth diff).
  ASSERT_OK(flat.Command({"SET", keys[1], "changed", "KEEPTTL"}).status());
  ASSERT_OK_AND_ASSIGN(diffs, CompareClusterWith(*cluster, standalone->endpoint()));
  std::vector<std::string> described;
  for (const KeyDiff& diff : diffs) described.push_back(DescribeDiff(diff));
  EXPECT_THAT(described, SizeIs(3)) << ::testing::PrintToString(described);
  // And the other way round: standalone source, cluster target.
  ASSERT_OK_AND_ASSIGN(diffs,
                       CompareDeployments(standalone->endpoint(), 0, cluster->endpoint(), 0));
  EXPECT_THAT(diffs, SizeIs(3));
}

}  // namespace
}  // namespace ferry::testing
