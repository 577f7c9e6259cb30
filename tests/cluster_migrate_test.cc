// `ferry migrate` and `ferry submit` with Redis Cluster on either side (issue 4): the real
// binaries between real clusters on loopback, through resharding and failovers, every result
// compared key by key (type, value, TTL).

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/redis/router.h"
#include "common/testing/compare.h"
#include "common/testing/redis_cluster.h"
#include "common/testing/redis_helpers.h"
#include "common/testing/redis_server.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/ferry_cli.h"

namespace ferry::testing {
namespace {

using ::testing::HasSubstr;

// Success when a comparison ran and found nothing; else the first diffs.
::testing::AssertionResult NoDiffs(const absl::StatusOr<std::vector<KeyDiff>>& diffs) {
  if (!diffs.ok()) return ::testing::AssertionFailure() << diffs.status();
  if (diffs->empty()) return ::testing::AssertionSuccess();
  ::testing::AssertionResult failure = ::testing::AssertionFailure();
  failure << diffs->size() << " keys differ:";
  for (size_t i = 0; i < diffs->size() && i < 20; ++i)
    failure << "\n  " << DescribeDiff((*diffs)[i]);
  return failure;
}

// Writes LoadMixedData's keys into a cluster: loaded into a scratch server, then DUMP and
// RESTORE through a Router.
absl::Status LoadCluster(const RedisCluster& cluster, int keys, uint64_t seed,
                         double ttl_fraction) {
  absl::StatusOr<std::unique_ptr<RedisServer>> scratch = RedisServer::Start();
  if (!scratch.ok()) return scratch.status();
  absl::StatusOr<redis::Connection> from = (*scratch)->Connect();
  if (!from.ok()) return from.status();
  if (absl::Status s = LoadMixedData(*from, 0, keys, seed, ttl_fraction); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<redis::Router>> router =
      redis::Router::Open(cluster.endpoint(), 0, {});
  if (!router.ok()) return router.status();
  std::string cursor = "0";
  do {
    absl::StatusOr<redis::Reply> scan = from->Command({"SCAN", cursor, "COUNT", "1000"});
    if (!scan.ok()) return scan.status();
    cursor = std::string(scan->element(0).str());
    const redis::ReplyView names = scan->element(1);
    for (size_t i = 0; i < names.size(); ++i) {
      from->Append({"PTTL", names.element(i).str()});
      from->Append({"DUMP", names.element(i).str()});
    }
    if (absl::Status s = from->Flush(); !s.ok()) return s;
    std::vector<redis::Reply> replies;
    std::vector<std::string> ttls;
    ttls.reserve(names.size());
    for (size_t i = 0; i < 2 * names.size(); ++i) {
      absl::StatusOr<redis::Reply> reply = from->ReadReply();
      if (!reply.ok()) return reply.status();
      replies.push_back(*std::move(reply));
    }
    for (size_t i = 0; i < names.size(); ++i) {
      ttls.push_back(std::to_string(std::max<int64_t>(replies[2 * i].integer(), 0)));
      (*router)->Add(
          {"RESTORE", names.element(i).str(), ttls.back(), replies[2 * i + 1].str(), "REPLACE"});
    }
    absl::StatusOr<std::vector<redis::Reply>> written = (*router)->Execute();
    if (!written.ok()) return written.status();
    for (const redis::Reply& reply : *written) {
      if (reply.is_error()) return absl::InternalError(std::string(reply.str()));
    }
  } while (cursor != "0");
  return absl::OkStatus();
}

absl::StatusOr<std::string> Info(const RedisServer& node, absl::string_view section) {
  absl::StatusOr<redis::Connection> conn = node.Connect();
  if (!conn.ok()) return conn.status();
  absl::StatusOr<redis::Reply> info = conn->Command({"INFO", section});
  if (!info.ok()) return info.status();
  return std::string(info->str());
}

// Keys on the cluster's primaries.
int64_t ClusterKeys(const RedisCluster& cluster) {
  absl::StatusOr<std::vector<int>> primaries = cluster.PrimaryIndices();
  if (!primaries.ok()) return -1;
  int64_t keys = 0;
  for (int index : *primaries) keys += std::max<int64_t>(DbSize(cluster.node(index)), 0);
  return keys;
}

// The node of `cluster` listening on `port`; null when none does.
const RedisServer* NodeAt(const RedisCluster& cluster, int port) {
  for (const auto& node : cluster.nodes()) {
    if (node->port() == port) return node.get();
  }
  return nullptr;
}

// Every replica holds as many keys as its primary.
absl::Status WaitReplicated(const RedisCluster& cluster) {
  return WaitFor(
      [&] {
        absl::StatusOr<redis::ClusterTopology> topology = cluster.Topology();
        if (!topology.ok()) return false;
        for (const redis::ClusterNode& replica : topology->nodes) {
          if (replica.primary) continue;
          const redis::ClusterNode* primary = nullptr;
          for (const redis::ClusterNode& node : topology->nodes) {
            if (node.id == replica.primary_id) primary = &node;
          }
          const RedisServer* r = NodeAt(cluster, replica.port);
          const RedisServer* p = primary ? NodeAt(cluster, primary->port) : nullptr;
          if (r == nullptr || p == nullptr || DbSize(*r) != DbSize(*p)) return false;
        }
        return true;
      },
      absl::Seconds(30), absl::Milliseconds(50));
}

// `calls` of DUMP in the node's INFO commandstats (0 when never called).
int64_t DumpCalls(const RedisServer& node) {
  absl::StatusOr<std::string> stats = Info(node, "commandstats");
  if (!stats.ok()) return -1;
  const std::string field = redis::InfoField(*stats, "cmdstat_dump");
  const size_t start = field.find("calls=");
  int64_t calls = 0;
  if (start == std::string::npos) return 0;
  (void)absl::SimpleAtoi(field.substr(start + 6, field.find(',', start) - start - 6), &calls);
  return calls;
}

class ClusterMigrateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RequireRedisServerBinary().ok()) << RequireRedisServerBinary();
  }

  static std::unique_ptr<RedisCluster> StartCluster(int primaries, int replicas) {
    absl::StatusOr<std::unique_ptr<RedisCluster>> cluster =
        RedisCluster::Start(primaries, replicas);
    EXPECT_TRUE(cluster.ok()) << cluster.status();
    return cluster.ok() ? *std::move(cluster) : nullptr;
  }

  static std::unique_ptr<RedisServer> StartServer() {
    absl::StatusOr<std::unique_ptr<RedisServer>> server = RedisServer::Start();
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? *std::move(server) : nullptr;
  }

  static CliResult Migrate(const std::string& from, const std::string& to,
                           std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"migrate",    "--from", from,       "--to", to,
                                     "--progress", "none",   "--output", "json"};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunFerry(args);
  }

  // Starts a rate-limited `ferry migrate` and returns once the target holds `keys` keys.
  static absl::StatusOr<Subprocess> StartSlowMigrate(const std::string& from, const std::string& to,
                                                     int rate,
                                                     const std::function<int64_t()>& keys_now,
                                                     int64_t keys, const std::string& log) {
    absl::StatusOr<Subprocess> ferry =
        StartFerry({"migrate", "--from", from, "--to", to, "--rate-limit", std::to_string(rate),
                    "--batch", "200", "--progress", "log", "--output", "json"},
                   log);
    if (!ferry.ok()) return ferry.status();
    absl::Status started = WaitFor([&] { return keys_now() >= keys; }, absl::Seconds(60));
    if (!started.ok()) return Annotate(started, FileTail(log));
    return ferry;
  }
};

TEST_F(ClusterMigrateTest, StandaloneToClusterOfThree) {
  auto source = StartServer();
  auto target = StartCluster(3, 0);
  ASSERT_TRUE(source && target);
  ASSERT_OK_AND_ASSIGN(redis::Connection conn, source->Connect());
  ASSERT_TRUE(LoadMixedData(conn, 0, 20000, 1, 0.3).ok());
  CliResult r = Migrate(source->uri(), target->uri());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.json_int("failed"), 0) << r.output;
  EXPECT_TRUE(NoDiffs(CompareDeployments(source->endpoint(), 0, target->endpoint(), 0)));
  for (int i = 0; i < 3; ++i) EXPECT_GT(DbSize(target->node(i)), 5000) << "node " << i;
}

TEST_F(ClusterMigrateTest, ClusterWithReplicasToClusterReadingReplicas) {
  auto source = StartCluster(3, 1);
  auto target = StartCluster(3, 0);
  ASSERT_TRUE(source && target);
  ASSERT_TRUE(LoadCluster(*source, 20000, 2, 0.3).ok());
  ASSERT_TRUE(WaitReplicated(*source).ok());
  for (const auto& node : source->nodes()) {
    ASSERT_OK_AND_ASSIGN(redis::Connection conn, node->Connect());
    ASSERT_TRUE(conn.Command({"CONFIG", "RESETSTAT"}).ok());
  }
  CliResult r = Migrate(source->uri(), target->uri(), {"--read-from", "replica"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The replicas did the reading; the primaries served no DUMP (before the comparison, which
  // reads the primaries).
  ASSERT_OK_AND_ASSIGN(std::vector<int> primaries, source->PrimaryIndices());
  for (int i = 0; i < static_cast<int>(source->nodes().size()); ++i) {
    const bool primary = std::find(primaries.begin(), primaries.end(), i) != primaries.end();
    if (primary) {
      EXPECT_EQ(DumpCalls(source->node(i)), 0) << "primary " << i;
    } else {
      EXPECT_GT(DumpCalls(source->node(i)), 5000) << "replica " << i;
    }
  }
  EXPECT_TRUE(NoDiffs(CompareClusterWith(*source, target->endpoint())));
}

TEST_F(ClusterMigrateTest, ClusterToStandalone) {
  auto source = StartCluster(3, 0);
  auto target = StartServer();
  ASSERT_TRUE(source && target);
  ASSERT_TRUE(LoadCluster(*source, 20000, 3, 0.3).ok());
  CliResult r = Migrate(source->uri(), target->uri(), {"--shards", "4"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.json_int("shards_total"), 12) << r.output;  // 4 per primary.
  EXPECT_TRUE(NoDiffs(CompareClusterWith(*source, target->endpoint())));
  EXPECT_EQ(DbSize(*target), 20000);
}

TEST_F(ClusterMigrateTest, CopyWhileTheTargetIsResharded) {
  auto source = StartServer();
  auto target = StartCluster(3, 0);
  ASSERT_TRUE(source && target);
  ASSERT_OK_AND_ASSIGN(redis::Connection conn, source->Connect());
  ASSERT_TRUE(LoadMixedData(conn, 0, 40000, 4, 0.2).ok());
  const ScopedTempDir scratch("ferry-reshard-");
  const std::string log = scratch.path() + "/ferry.log";
  ASSERT_OK_AND_ASSIGN(Subprocess ferry, StartSlowMigrate(
                                             source->uri(), target->uri(), 8000,
                                             [&] { return ClusterKeys(*target); }, 2000, log));
  ASSERT_OK_AND_ASSIGN(Subprocess reshard, target->Reshard(2000, 0, 1));
  // The reshard overlaps the copy: ferry is still running once it has started.
  EXPECT_FALSE(ferry.TryWait().has_value()) << ReadFile(log);
  ASSERT_OK_AND_ASSIGN(int code, ferry.Wait(absl::Minutes(3)));
  EXPECT_EQ(code, 0) << ReadFile(log);
  ASSERT_OK_AND_ASSIGN(int reshard_code, reshard.Wait(absl::Minutes(3)));
  ASSERT_EQ(reshard_code, 0) << FileTail(target->tool_log());
  ASSERT_TRUE(target->WaitHealthy().ok());
  ASSERT_OK_AND_ASSIGN(redis::ClusterTopology topology, target->Topology());
  EXPECT_EQ(topology.OwnerOf(0)->port, target->node(1).port());  // The slots did move.
  EXPECT_TRUE(NoDiffs(CompareDeployments(source->endpoint(), 0, target->endpoint(), 0)));
}

TEST_F(ClusterMigrateTest, CopyWhileTheSourceIsResharded) {
  auto source = StartCluster(3, 0);
  auto target = StartServer();
  ASSERT_TRUE(source && target);
  ASSERT_TRUE(LoadCluster(*source, 40000, 8, 0.2).ok());
  const ScopedTempDir scratch("ferry-src-reshard-");
  const std::string log = scratch.path() + "/ferry.log";
  absl::StatusOr<Subprocess> ferry =
      StartFerry({"migrate", "--from", source->uri(), "--to", target->uri(), "--rate-limit", "8000",
                  "--batch", "200", "--progress", "none"},
                 log, {{"FERRY_LOG_LEVEL", "info"}});
  ASSERT_TRUE(ferry.ok()) << ferry.status();
  ASSERT_TRUE(WaitFor([&] { return DbSize(*target) >= 2000; }, absl::Seconds(60)).ok());
  ASSERT_OK_AND_ASSIGN(Subprocess reshard, source->Reshard(3000, 0, 2));
  EXPECT_FALSE(ferry->TryWait().has_value()) << ReadFile(log);
  ASSERT_OK_AND_ASSIGN(int code, ferry->Wait(absl::Minutes(3)));
  EXPECT_EQ(code, 0) << ReadFile(log);
  ASSERT_OK_AND_ASSIGN(int reshard_code, reshard.Wait(absl::Minutes(3)));
  ASSERT_EQ(reshard_code, 0) << FileTail(source->tool_log());
  ASSERT_TRUE(source->WaitHealthy().ok());
  // Slots that left node 0 while its shard was read were read again from node 2.
  EXPECT_THAT(ReadFile(log), HasSubstr("again from their owners"));
  EXPECT_TRUE(NoDiffs(CompareClusterWith(*source, target->endpoint())));
  EXPECT_EQ(DbSize(*target), 40000);
}

TEST_F(ClusterMigrateTest, SourcePrimaryFailsOverMidCopy) {
  auto source = StartCluster(3, 1);
  auto target = StartServer();
  ASSERT_TRUE(source && target);
  ASSERT_TRUE(LoadCluster(*source, 30000, 5, 0.2).ok());
  ASSERT_TRUE(WaitReplicated(*source).ok());
  const ScopedTempDir scratch("ferry-src-failover-");
  const std::string log = scratch.path() + "/ferry.log";
  ASSERT_OK_AND_ASSIGN(Subprocess ferry, StartSlowMigrate(
                                             source->uri(), target->uri(), 4000,
                                             [&] { return DbSize(*target); }, 3000, log));
  ASSERT_OK_AND_ASSIGN(int new_primary, source->Failover(0));
  EXPECT_NE(new_primary, 0);
  EXPECT_FALSE(ferry.TryWait().has_value()) << "the copy ended before the failover";
  ASSERT_OK_AND_ASSIGN(int code, ferry.Wait(absl::Minutes(3)));
  EXPECT_EQ(code, 0) << ReadFile(log);
  EXPECT_TRUE(NoDiffs(CompareClusterWith(*source, target->endpoint())));
  EXPECT_EQ(DbSize(*target), 30000);
}

TEST_F(ClusterMigrateTest, TargetPrimaryFailsOverMidCopy) {
  auto source = StartServer();
  auto target = StartCluster(3, 1);
  ASSERT_TRUE(source && target);
  ASSERT_OK_AND_ASSIGN(redis::Connection conn, source->Connect());
  ASSERT_TRUE(LoadMixedData(conn, 0, 30000, 6, 0.2).ok());
  const ScopedTempDir scratch("ferry-dst-failover-");
  const std::string log = scratch.path() + "/ferry.log";
  ASSERT_OK_AND_ASSIGN(Subprocess ferry, StartSlowMigrate(
                                             source->uri(), target->uri(), 4000,
                                             [&] { return ClusterKeys(*target); }, 3000, log));
  ASSERT_OK_AND_ASSIGN(int new_primary, target->Failover(1));
  EXPECT_NE(new_primary, 1);
  EXPECT_FALSE(ferry.TryWait().has_value()) << "the copy ended before the failover";
  ASSERT_OK_AND_ASSIGN(int code, ferry.Wait(absl::Minutes(3)));
  EXPECT_EQ(code, 0) << ReadFile(log);
  ASSERT_TRUE(WaitReplicated(*target).ok());
  EXPECT_TRUE(NoDiffs(CompareDeployments(source->endpoint(), 0, target->endpoint(), 0)));
}

// Issue 7, case 2 on a cluster: a target primary restarts empty (same node id and slots, its
// data gone) mid-copy. The copy cannot be trusted: the job fails and says why.
TEST_F(ClusterMigrateTest, TargetPrimaryThatRestartsEmptyFailsTheJob) {
  auto source = StartServer();
  auto target = StartCluster(3, 0);
  ASSERT_TRUE(source && target);
  ASSERT_OK_AND_ASSIGN(redis::Connection conn, source->Connect());
  ASSERT_TRUE(LoadMixedData(conn, 0, 30000, 7, 0).ok());
  const ScopedTempDir scratch("ferry-dst-restart-");
  const std::string log = scratch.path() + "/ferry.log";
  ASSERT_OK_AND_ASSIGN(Subprocess ferry, StartSlowMigrate(
                                             source->uri(), target->uri(), 4000,
                                             [&] { return ClusterKeys(*target); }, 3000, log));
  target->node(1).Kill();
  ASSERT_TRUE(target->node(1).Restart(/*keep_data=*/false).ok());
  ASSERT_TRUE(target->WaitHealthy().ok());
  ASSERT_OK_AND_ASSIGN(int code, ferry.Wait(absl::Minutes(3)));
  const std::string output = ReadFile(log);
  EXPECT_NE(code, 0) << output;
  EXPECT_THAT(output, HasSubstr("restarted during the copy")) << output;
  // Keys were lost with the restart: a "done" would have been false.
  auto diffs = CompareDeployments(source->endpoint(), 0, target->endpoint(), 0);
  ASSERT_TRUE(diffs.ok()) << diffs.status();
  EXPECT_FALSE(diffs->empty());
}

TEST_F(ClusterMigrateTest, SeveralDatabasesIntoAClusterNeedDbOrMergeDbs) {
  auto source = StartServer();
  auto target = StartCluster(3, 0);
  ASSERT_TRUE(source && target);
  for (int db : {0, 1, 2}) {
    ASSERT_OK_AND_ASSIGN(redis::Connection conn, source->Connect(db));
    ASSERT_TRUE(LoadMixedData(conn, db, 2000 + db, /*seed=*/10 + db, 0.2).ok());
  }
  CliResult refused = Migrate(source->uri(), target->uri());
  EXPECT_EQ(refused.exit_code, 2) << refused.output;
  EXPECT_THAT(refused.output, HasSubstr("has only db 0"));
  EXPECT_THAT(refused.output, HasSubstr("--merge-dbs"));
  EXPECT_EQ(ClusterKeys(*target), 0);

  CliResult one = Migrate(source->uri(), target->uri(), {"--db", "1"});
  ASSERT_EQ(one.exit_code, 0) << one.output;
  EXPECT_TRUE(NoDiffs(CompareDeployments(source->endpoint(), 1, target->endpoint(), 0)));
  for (int i = 0; i < 3; ++i) target->node(i).FlushAll();

  CliResult merged = Migrate(source->uri(), target->uri(), {"--merge-dbs"});
  ASSERT_EQ(merged.exit_code, 0) << merged.output;
  CompareOptions only_source_keys;
  only_source_keys.check_extra_in_target = false;
  for (int db : {0, 1, 2}) {
    EXPECT_TRUE(NoDiffs(
        CompareDeployments(source->endpoint(), db, target->endpoint(), 0, only_source_keys)))
        << "db " << db;
  }
  EXPECT_EQ(ClusterKeys(*target), 2000 + 2001 + 2002);
}

// A controller and an agent as separate processes, driven by `ferry submit` and `ferry watch`.
class ControllerProcesses {
 public:
  absl::Status Start() {
    address_ = absl::StrCat("127.0.0.1:", FreeTcpPort());
    SubprocessOptions options;
    options.log_file = dir_.path() + "/controller.log";
    absl::StatusOr<Subprocess> controller =
        Subprocess::Start({FerryBinary("ferry-controller"), "--listen", address_, "--state",
                           dir_.path() + "/state.db"},
                          options);
    if (!controller.ok()) return controller.status();
    controller_.emplace(*std::move(controller));
    absl::Status up = WaitFor(
        [&] {
          return Ferry({"list", "--timeout", "2"}).exit_code == 0;
        },
        absl::Seconds(30), absl::Milliseconds(100));
    if (!up.ok()) return Annotate(up, FileTail(options.log_file));
    options.log_file = dir_.path() + "/agent.log";
    absl::StatusOr<Subprocess> agent = Subprocess::Start(
        {FerryBinary("ferry-agent"), "--controller", address_, "--slots", "4"}, options);
    if (!agent.ok()) return agent.status();
    agent_.emplace(*std::move(agent));
    return absl::OkStatus();
  }

  CliResult Ferry(std::vector<std::string> args) const {
    args.insert(args.begin() + 1, {"--controller", address_});
    return RunFerry(args);
  }

 private:
  // First, so it is removed after the processes that write into it are gone.
  const ScopedTempDir dir_{"ferry-submit-"};
  std::string address_;
  std::optional<Subprocess> controller_;
  std::optional<Subprocess> agent_;
};

TEST_F(ClusterMigrateTest, SubmitCopiesAClusterIntoAClusterOfAnotherShape) {
  auto source = StartCluster(3, 0);
  auto target = StartCluster(2, 0);
  ASSERT_TRUE(source && target);
  ASSERT_TRUE(LoadCluster(*source, 20000, 7, 0.3).ok());
  ControllerProcesses fleet;
  ASSERT_TRUE(fleet.Start().ok());
  CliResult submitted =
      fleet.Ferry({"submit", "--from", source->uri(), "--to", target->uri(), "--shards", "2"});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.output;
  std::string job_id = submitted.output;
  job_id.erase(job_id.find_last_not_of(" \r\n") + 1);
  job_id = job_id.substr(job_id.find_last_of('\n') + 1);
  CliResult watched = fleet.Ferry({"watch", job_id, "--progress", "none", "--output", "json"});
  ASSERT_EQ(watched.exit_code, 0) << watched.output;
  EXPECT_EQ(watched.json_int("shards_total"), 6) << watched.output;
  EXPECT_TRUE(NoDiffs(CompareClusterWith(*source, target->endpoint())));
}

}  // namespace
}  // namespace ferry::testing
