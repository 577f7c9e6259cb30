// Live sync end to end (issue 11): real redis-server processes, a writer mutating the source
// with every kind of write throughout the snapshot and the live phase, the real ferry binaries.
// Each case ends with the writer stopped, `ferry cutover` (which verifies), and a key-by-key
// comparison that must find nothing; the fault cases break the notifications on the way (the
// subscriber killed, a tiny pubsub output buffer, the agent killed, the controller restarted,
// FLUSHDB on the source, a failover of a cluster source) and must still converge. A cutover while
// the writer runs must say it cannot converge.

#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/testing/compare.h"
#include "common/testing/redis_cluster.h"
#include "common/testing/redis_server.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/ferry_cli.h"
#include "tests/fleet.h"
#include "tests/live_writer.h"

namespace ferry::testing {
namespace {

using ::testing::HasSubstr;

constexpr int kInitialKeys = 4000;

RedisServerOptions Notifying() {
  RedisServerOptions options;
  options.extra_config = {"notify-keyspace-events KA"};
  return options;
}

std::unique_ptr<RedisServer> Server(RedisServerOptions options = {}) {
  auto server = RedisServer::Start(std::move(options));
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

redis::Connection Conn(const RedisServer& server) {
  auto conn = server.Connect();
  EXPECT_TRUE(conn.ok()) << conn.status();
  return *std::move(conn);
}

// The job's `ferry status --output json` shows it LIVE with every node in sync (the top-level
// in_sync follows the nodes' array).
bool LiveInSync(const std::string& json) {
  return JsonScalar(json, "state") == "JOB_STATE_LIVE" &&
         absl::StrContains(json, "],\"in_sync\":true");
}

class LiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RequireRedisServerBinary().ok()) << RequireRedisServerBinary();
    source_ = Server(Notifying());
    target_ = Server();
    ASSERT_TRUE(source_ && target_);
    redis::Connection conn = Conn(*source_);
    ASSERT_TRUE(LoadMixedData(conn, 0, kInitialKeys, 7, 0.25).ok());
  }

  void StartWriter(double ops_per_second = 2000, uint64_t seed = 11) {
    LiveWriterOptions options;
    options.ops_per_second = ops_per_second;
    options.seed = seed;
    writer_ = std::make_unique<LiveWriter>(source_->endpoint(), 0, options);
    writer_->Start();
  }

  void StopWriter() {
    ASSERT_NE(writer_, nullptr);
    absl::Status stopped = writer_->Stop();
    EXPECT_TRUE(stopped.ok()) << stopped;
    EXPECT_GT(writer_->ops(), 1000u) << "the writer barely wrote";
  }

  void ExpectSameData() {
    redis::Connection source = Conn(*source_);
    redis::Connection target = Conn(*target_);
    EXPECT_TRUE(SameData(source, target));
  }

  std::unique_ptr<RedisServer> source_, target_;
  std::unique_ptr<LiveWriter> writer_;
};

// ---- On one machine: `ferry migrate --live --listen`, cut over from another shell.

TEST_F(LiveTest, MigrateLiveFollowsEveryKindOfWriteAndCutsOverEqual) {
  ScopedTempDir dir("live_migrate");
  const std::string address = absl::StrCat("127.0.0.1:", FreeTcpPort());
  StartWriter();  // Writes during the snapshot too.
  ASSERT_OK_AND_ASSIGN(
      Subprocess migrate,
      StartFerry({"migrate", "--live", "--listen", address, "--from", source_->uri(), "--to",
                  target_->uri(), "--progress", "log", "--state", dir.path() + "/state.db"},
                 dir.path() + "/migrate.log"));
  std::string job, json;
  absl::Status live = WaitFor(
      [&] {
        if (job.empty()) {
          CliResult list = RunFerry({"list", "--controller", address, "--output", "json"});
          if (list.exit_code == 0) job = JsonScalar(list.output, "id");
          return false;
        }
        CliResult status = RunFerry({"status", job, "--controller", address, "--output", "json"});
        json = status.output;
        return LiveInSync(json);
      },
      absl::Seconds(90), absl::Milliseconds(250));
  ASSERT_TRUE(live.ok()) << json << "\n" << ReadFile(dir.path() + "/migrate.log");
  absl::SleepFor(absl::Seconds(3));  // Live for a while.
  StopWriter();
  CliResult status = RunFerry({"status", job, "--controller", address, "--output", "json"});
  EXPECT_GT(JsonInt(status.output, "events"), 1000) << "the watcher saw the writer's events";
  EXPECT_GT(JsonInt(status.output, "applied"), 0) << status.output;

  CliResult cutover = RunFerry({"cutover", job, "--controller", address}, {}, absl::Minutes(3));
  EXPECT_EQ(cutover.exit_code, 0) << cutover.output << ReadFile(dir.path() + "/migrate.log");
  absl::StatusOr<int> exit_code = migrate.Wait(absl::Seconds(120));
  ASSERT_TRUE(exit_code.ok()) << exit_code.status() << ReadFile(dir.path() + "/migrate.log");
  EXPECT_EQ(*exit_code, 0) << ReadFile(dir.path() + "/migrate.log");
  ExpectSameData();
}

// ---- A fleet: faults during the live phase.

class LiveFleetTest : public LiveTest {
 protected:
  void SetUp() override {
    LiveTest::SetUp();
    if (HasFatalFailure()) return;
    absl::Status started = fleet_.StartController();
    ASSERT_TRUE(started.ok()) << started;
    ASSERT_OK_AND_ASSIGN(int agent, fleet_.StartAgent(2));
    (void)agent;
    ASSERT_TRUE(fleet_.WaitForAgents(1).ok()) << fleet_.AllLogs();
  }

  // Submits a live job of source_ into target_ (the writer already running) and waits until it
  // is in sync.
  void SubmitLive(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"--live", "--from", source_->uri(), "--to", target_->uri()};
    args.insert(args.end(), extra.begin(), extra.end());
    SubmitResult submit = fleet_.Submit(args);
    ASSERT_EQ(submit.exit_code, 0) << submit.out << submit.err;
    job_ = submit.job_id;
    WaitInSync();
  }

  void WaitInSync(absl::Duration timeout = absl::Seconds(90)) {
    std::string json;
    absl::Status synced = WaitFor(
        [&] {
          json = fleet_.StatusJson(job_).value_or("");
          return LiveInSync(json);
        },
        timeout, absl::Milliseconds(250));
    ASSERT_TRUE(synced.ok()) << json << "\n" << fleet_.AllLogs();
  }

  // Waits until the job shows a gap (and so a rescan) after a fault.
  void WaitForGap() {
    std::string json;
    absl::Status gap = WaitFor(
        [&] {
          json = fleet_.StatusJson(job_).value_or("");
          return JsonInt(json, "gaps") >= 1;
        },
        absl::Seconds(30), absl::Milliseconds(200));
    ASSERT_TRUE(gap.ok()) << "no gap reported: " << json << "\n" << fleet_.AllLogs();
  }

  // Writer stopped: cut over (which verifies) and compare key by key.
  void CutoverAndCompare() {
    WaitInSync();
    CliResult cutover = fleet_.Ferry("cutover", {job_}, {}, absl::Minutes(3));
    EXPECT_EQ(cutover.exit_code, 0) << cutover.output << "\n" << fleet_.AllLogs();
    EXPECT_EQ(fleet_.State(job_), "JOB_STATE_CUTOVER_READY");
    ExpectSameData();
  }

  Fleet fleet_;
  std::string job_;
};

TEST_F(LiveFleetTest, SubscriberKilledIsAGapThatARescanCloses) {
  StartWriter();
  SubmitLive();
  redis::Connection conn = Conn(*source_);
  ASSERT_OK_AND_ASSIGN(redis::Reply killed, conn.Command({"CLIENT", "KILL", "TYPE", "pubsub"}));
  EXPECT_GE(killed.integer(), 1) << "no subscriber to kill";
  WaitForGap();
  absl::SleepFor(absl::Seconds(2));
  StopWriter();
  CutoverAndCompare();
  EXPECT_GE(JsonInt(fleet_.StatusJson(job_).value_or(""), "rescans"), 1);
}

TEST_F(LiveFleetTest, TinyPubsubOutputBufferKillsTheSubscriberAndNothingIsLost) {
  redis::Connection conn = Conn(*source_);
  StartWriter(3000);
  SubmitLive();
  // A small limit, and a subscriber that stops reading for a while (its agent stopped): the
  // events pile up in the server, which kills the subscriber.
  ASSERT_TRUE(
      conn.Command({"CONFIG", "SET", "client-output-buffer-limit", "pubsub 64kb 0 0"}).ok());
  ASSERT_TRUE(fleet_.agent(0).Signal(SIGSTOP).ok());
  // More events than the kernel's socket buffers hold: keys with long names, 10 MB of events.
  for (int round = 0; round < 4; ++round) {
    std::vector<std::string> mset = {"MSET"};
    for (int i = 0; i < 10000; ++i) {
      mset.push_back(absl::StrCat("burst:", round, ":", i, ":", std::string(200, 'k')));
      mset.push_back("v");
    }
    const std::vector<absl::string_view> argv(mset.begin(), mset.end());
    ASSERT_TRUE(conn.Command(argv).ok());
  }
  absl::SleepFor(absl::Seconds(1));
  ASSERT_TRUE(fleet_.agent(0).Signal(SIGCONT).ok());
  WaitForGap();
  EXPECT_THAT(fleet_.StatusJson(job_).value_or(""), HasSubstr("subscription"))
      << "the gap is the subscriber the server killed";
  absl::SleepFor(absl::Seconds(2));
  StopWriter();
  ASSERT_TRUE(
      conn.Command({"CONFIG", "SET", "client-output-buffer-limit", "pubsub 32mb 8mb 60"}).ok());
  CutoverAndCompare();
}

TEST_F(LiveFleetTest, AgentKilledDuringLiveResumesWithARescan) {
  StartWriter();
  SubmitLive();
  fleet_.KillAgent(0);
  ASSERT_OK_AND_ASSIGN(int agent, fleet_.StartAgent(2));
  (void)agent;
  WaitForGap();
  absl::SleepFor(absl::Seconds(2));
  StopWriter();
  CutoverAndCompare();
}

TEST_F(LiveFleetTest, ControllerKilledDuringLiveResumesWithARescan) {
  StartWriter();
  SubmitLive();
  fleet_.KillController();
  absl::SleepFor(absl::Seconds(1));
  ASSERT_TRUE(fleet_.StartController().ok()) << fleet_.AllLogs();
  WaitForGap();
  absl::SleepFor(absl::Seconds(2));
  StopWriter();
  CutoverAndCompare();
}

TEST_F(LiveFleetTest, FlushdbOnTheSourceIsAGapAndTheTargetFollows) {
  StartWriter();
  SubmitLive();
  redis::Connection conn = Conn(*source_);
  ASSERT_TRUE(conn.Command({"FLUSHDB"}).ok());
  WaitForGap();
  absl::SleepFor(absl::Seconds(2));
  StopWriter();
  CutoverAndCompare();
  // The snapshot's keys are gone from the target too: only what the writer wrote since is left.
  EXPECT_LT(TotalKeys(*target_), kInitialKeys);
}

TEST_F(LiveFleetTest, CutoverWhileTheWriterRunsSaysItCannotConverge) {
  StartWriter();
  SubmitLive();
  CliResult cutover = fleet_.Ferry("cutover", {job_, "--timeout", "20"}, {}, absl::Minutes(2));
  EXPECT_NE(cutover.exit_code, 0) << cutover.output;
  EXPECT_THAT(cutover.output, HasSubstr("writes go on")) << cutover.output;
  EXPECT_EQ(fleet_.State(job_), "JOB_STATE_LIVE");
  StopWriter();
  CutoverAndCompare();
}

TEST_F(LiveFleetTest, AnEmptySourceIsFollowedFromTheStart) {
  // db 5 holds nothing when the job is planned.
  SubmitResult submit =
      fleet_.Submit({"--live", "--from", source_->uri() + "/5", "--to", target_->uri() + "/5"});
  ASSERT_EQ(submit.exit_code, 0) << submit.out << submit.err;
  job_ = submit.job_id;
  WaitInSync();
  ASSERT_OK_AND_ASSIGN(redis::Connection conn, source_->Connect(5));
  ASSERT_TRUE(conn.Command({"SET", "arrived", "later"}).ok());
  ASSERT_OK_AND_ASSIGN(redis::Connection target, target_->Connect(5));
  absl::Status copied = WaitFor(
      [&] {
        absl::StatusOr<redis::Reply> value = target.Command({"GET", "arrived"});
        return value.ok() && value->str() == "later";
      },
      absl::Seconds(10), absl::Milliseconds(50));
  EXPECT_TRUE(copied.ok()) << fleet_.AllLogs();
  CliResult cutover = fleet_.Ferry("cutover", {job_}, {}, absl::Minutes(2));
  EXPECT_EQ(cutover.exit_code, 0) << cutover.output;
}

// ---- A cluster source: one watch per primary, moved to the new primary after a failover.

TEST(LiveClusterTest, ClusterSourceFailoverIsAGapAndNothingIsLost) {
  ASSERT_TRUE(RequireRedisServerBinary().ok()) << RequireRedisServerBinary();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisCluster> cluster,
                       RedisCluster::Start(3, 1, Notifying()));
  std::unique_ptr<RedisServer> target = Server();
  ASSERT_NE(target, nullptr);
  Fleet fleet;
  ASSERT_TRUE(fleet.StartController().ok());
  ASSERT_TRUE(fleet.StartAgents(1, 4).ok()) << fleet.AllLogs();
  LiveWriterOptions options;
  options.ops_per_second = 2000;
  LiveWriter writer(cluster->endpoint(), 0, options);
  writer.Start();
  SubmitResult submit = fleet.Submit({"--live", "--from", cluster->uri(), "--to", target->uri()});
  ASSERT_EQ(submit.exit_code, 0) << submit.out << submit.err;
  const std::string job = submit.job_id;
  const auto in_sync = [&] {
    std::string json;
    absl::Status synced = WaitFor(
        [&] {
          json = fleet.StatusJson(job).value_or("");
          return LiveInSync(json);
        },
        absl::Seconds(120), absl::Milliseconds(250));
    EXPECT_TRUE(synced.ok()) << json << "\n" << fleet.AllLogs();
    return json;
  };
  in_sync();
  ASSERT_OK_AND_ASSIGN(int promoted, cluster->Failover(0));
  (void)promoted;
  absl::Status gap =
      WaitFor([&] { return JsonInt(fleet.StatusJson(job).value_or(""), "gaps") >= 1; },
              absl::Seconds(30), absl::Milliseconds(200));
  EXPECT_TRUE(gap.ok()) << fleet.AllLogs();
  absl::SleepFor(absl::Seconds(2));
  ASSERT_TRUE(writer.Stop().ok());
  in_sync();
  CliResult cutover = fleet.Ferry("cutover", {job}, {}, absl::Minutes(3));
  EXPECT_EQ(cutover.exit_code, 0) << cutover.output << "\n" << fleet.AllLogs();
  ASSERT_OK_AND_ASSIGN(std::vector<KeyDiff> diffs,
                       CompareClusterWith(*cluster, target->endpoint()));
  EXPECT_TRUE(diffs.empty()) << (diffs.empty() ? "" : DescribeDiff(diffs[0]));
}

}  // namespace
}  // namespace ferry::testing
