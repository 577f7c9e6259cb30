// Faults on a fleet mid-job: real ferry-controller, ferry-agent and redis-server processes; an
// agent or the controller killed, stopped or frozen, or the source restarted, while a
// rate-limited job runs. Every test ends with a key-by-key comparison of all databases.

#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "common/testing/compare.h"
#include "common/testing/redis_server.h"
#include "gtest/gtest.h"
#include "tests/fleet.h"

namespace ferry::testing {
namespace {

constexpr int kKeysPerDb = 10000;
constexpr int kBatch = 200;
constexpr int kAgents = 3;
constexpr int kSlots = 2;

class FleetFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RequireRedisServerBinary().ok()) << RequireRedisServerBinary();
    auto source = RedisServer::Start();
    ASSERT_TRUE(source.ok()) << source.status();
    source_ = *std::move(source);
    auto target = RedisServer::Start();
    ASSERT_TRUE(target.ok()) << target.status();
    target_ = *std::move(target);
    for (int db : {0, 2, 5}) {
      auto conn = source_->Connect(db);
      ASSERT_TRUE(conn.ok()) << conn.status();
      ASSERT_TRUE(LoadMixedData(*conn, db, kKeysPerDb, /*seed=*/db + 1, /*ttl_fraction=*/0.2).ok());
    }
    total_keys_ = TotalKeys(*source_);
    ASSERT_EQ(total_keys_, 3 * kKeysPerDb);
    absl::Status started = fleet_.StartController();
    ASSERT_TRUE(started.ok()) << started;
    absl::Status agents = fleet_.StartAgents(kAgents, kSlots);
    ASSERT_TRUE(agents.ok()) << agents << "\n" << fleet_.AllLogs();
  }

  // A job over dbs 0, 2 and 5 (4 shards each) at 5000 keys/s: about 6 s of copying.
  std::string SubmitJob(std::vector<std::string> extra = {"--rate-limit", "5000"}) {
    std::vector<std::string> args = {"--from",     source_->uri(),
                                     "--to",       target_->uri(),
                                     "--batch",    std::to_string(kBatch),
                                     "--shards",   "4",
                                     "--parallel", std::to_string(kAgents * kSlots)};
    args.insert(args.end(), extra.begin(), extra.end());
    SubmitResult r = fleet_.Submit(args);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_FALSE(r.job_id.empty());
    return r.job_id;
  }

  // Polls until the target holds at least `keys` keys, and checks the job is not over yet.
  void WaitForTargetKeys(int64_t keys) {
    absl::Status status = WaitFor([&] { return TotalKeys(*target_) >= keys; }, absl::Seconds(120),
                                  absl::Milliseconds(50));
    ASSERT_TRUE(status.ok()) << "target has " << TotalKeys(*target_) << " keys\n"
                             << fleet_.AllLogs();
  }

  // An agent that runs at least one shard right now.
  int BusyAgent() {
    int busy = -1;
    absl::Status status = WaitFor(
        [&] {
          for (int i = 0; i < fleet_.agent_count(); ++i) {
            if (!fleet_.agent(i).running()) continue;
            std::optional<int> running = fleet_.AgentRunning(i);
            if (running.has_value() && *running > 0) {
              busy = i;
              return true;
            }
          }
          return false;
        },
        absl::Seconds(30), absl::Milliseconds(100));
    EXPECT_TRUE(status.ok()) << "no agent runs a shard\n" << fleet_.AllLogs();
    return busy;
  }

  // `ferry watch` until the end: DONE, nothing failed. Returns the final JSON report.
  CliResult WatchUntilDone(const std::string& job_id) {
    CliResult r = fleet_.Watch(job_id);
    EXPECT_EQ(r.exit_code, 0) << r.output << "\n" << fleet_.AllLogs();
    EXPECT_EQ(JsonScalar(r.json_line(), "state"), "done") << r.output;
    EXPECT_EQ(r.json_int("failed"), 0) << r.output;
    return r;
  }

  void ExpectSameData() {
    auto src = source_->Connect();
    auto dst = target_->Connect();
    ASSERT_TRUE(src.ok() && dst.ok());
    EXPECT_TRUE(SameData(*src, *dst));
    EXPECT_EQ(TotalKeys(*target_), total_keys_);
  }

  std::unique_ptr<RedisServer> source_;
  std::unique_ptr<RedisServer> target_;
  int64_t total_keys_ = 0;
  Fleet fleet_;
};

TEST_F(FleetFaultsTest, AgentKilledMidJobLosesNothing) {
  const std::string job = SubmitJob();
  WaitForTargetKeys(3000);
  const int victim = BusyAgent();
  ASSERT_GE(victim, 0);
  fleet_.KillAgent(victim);
  ASSERT_LT(TotalKeys(*target_), total_keys_) << "the job ended before the kill";
  // The controller sees the stream break and hands the shards to the others.
  EXPECT_TRUE(fleet_.WaitForAgents(kAgents - 1).ok()) << fleet_.AllLogs();
  WatchUntilDone(job);
  ExpectSameData();
}

TEST_F(FleetFaultsTest, ControllerKilledAndRestartedMidJobLosesNothing) {
  const std::string job = SubmitJob();
  // A watch that outlives the controller: it reconnects and still sees the end.
  absl::StatusOr<Subprocess> watch = StartFerry(
      {"watch", job, "--progress", "none", "--output", "json", "--controller", fleet_.address()},
      fleet_.dir() + "/watch.log");
  ASSERT_TRUE(watch.ok()) << watch.status();
  WaitForTargetKeys(3000);
  fleet_.KillController();
  ASSERT_LT(TotalKeys(*target_), total_keys_) << "the job ended before the kill";
  // Its state file still says which shards were leased: the new process takes them back at
  // their checkpoints, and the agents reconnect by themselves.
  absl::Status restarted = fleet_.StartController();
  ASSERT_TRUE(restarted.ok()) << restarted;
  ASSERT_TRUE(fleet_.WaitForAgents(kAgents).ok()) << fleet_.AllLogs();
  WatchUntilDone(job);
  absl::StatusOr<int> watch_code = watch->Wait(absl::Minutes(3));
  ASSERT_TRUE(watch_code.ok()) << watch_code.status();
  EXPECT_EQ(*watch_code, 0) << ReadFile(fleet_.dir() + "/watch.log");
  ExpectSameData();
}

TEST_F(FleetFaultsTest, ControllerStoppedWithSigtermMidJobResumesAfterRestart) {
  const std::string job = SubmitJob();
  WaitForTargetKeys(3000);
  absl::StatusOr<int> code = fleet_.StopController(absl::Seconds(30));
  ASSERT_TRUE(code.ok()) << code.status() << "\n" << ReadFile(fleet_.controller_log());
  EXPECT_EQ(*code, 0) << ReadFile(fleet_.controller_log());
  ASSERT_LT(TotalKeys(*target_), total_keys_) << "the job ended before the stop";
  absl::Status restarted = fleet_.StartController();
  ASSERT_TRUE(restarted.ok()) << restarted;
  WatchUntilDone(job);
  ExpectSameData();
}

TEST_F(FleetFaultsTest, AgentFrozenPastItsLeaseLosesItsShards) {
  const std::string job = SubmitJob();
  WaitForTargetKeys(3000);
  const int frozen = BusyAgent();
  ASSERT_GE(frozen, 0);
  ASSERT_TRUE(fleet_.agent(frozen).Signal(SIGSTOP).ok());
  // Its connection stays open, but it is silent for the lease timeout (15 s): its leases
  // expire and go to the other agents.
  absl::Status expired = WaitFor(
      [&] {
        std::optional<int> running = fleet_.AgentRunning(frozen);
        return running.has_value() && *running == 0;
      },
      absl::Seconds(90), absl::Milliseconds(200));
  EXPECT_TRUE(expired.ok()) << fleet_.AllLogs();
  ASSERT_LT(TotalKeys(*target_), total_keys_) << "the job ended before the leases expired";
  // Woken up, it still runs the shards it lost and reports them with old epochs; the
  // controller refuses those reports and revokes the leases.
  ASSERT_TRUE(fleet_.agent(frozen).Signal(SIGCONT).ok());
  WatchUntilDone(job);
  ExpectSameData();
  EXPECT_TRUE(fleet_.agent(frozen).running()) << ReadFile(fleet_.agent_log(frozen));
  EXPECT_TRUE(fleet_.WaitForAgents(kAgents).ok()) << fleet_.AllLogs();
}

TEST_F(FleetFaultsTest, SourceRestartedMidJobRestartsShardsAndLosesNothing) {
  const std::string job = SubmitJob();
  WaitForTargetKeys(3000);
  auto conn = source_->Connect();
  ASSERT_TRUE(conn.ok());
  const std::string old_run_id =
      redis::InfoField(conn->Command({"INFO", "server"})->str(), "run_id");
  const int64_t keys_before_restart = TotalKeys(*target_);
  absl::Status restarted = source_->Restart(/*keep_data=*/true);
  ASSERT_TRUE(restarted.ok()) << restarted;
  ASSERT_EQ(TotalKeys(*source_), total_keys_);
  conn = source_->Connect();
  ASSERT_TRUE(conn.ok());
  ASSERT_NE(redis::InfoField(conn->Command({"INFO", "server"})->str(), "run_id"), old_run_id);
  ASSERT_LT(TotalKeys(*target_), total_keys_) << "the job ended before the restart";
  CliResult done = WatchUntilDone(job);
  ExpectSameData();

  // The new process hashes keys with a new seed, so old cursors mean nothing there: the
  // running shards start over. An undisturbed walk of the restarted server (a dry run) scans
  // `after`; the job scanned that plus what its shards had scanned before the restart.
  CliResult dry = fleet_.Watch(SubmitJob({"--dry-run"}));
  ASSERT_EQ(dry.exit_code, 0) << dry.output;
  const int64_t after = dry.json_int("scanned");
  const int64_t scanned = done.json_int("scanned");
  RecordProperty("before_restart", std::to_string(keys_before_restart));
  RecordProperty("dry_run_after", std::to_string(after));
  RecordProperty("scanned", std::to_string(scanned));
  EXPECT_GE(scanned, after + keys_before_restart / 2)
      << keys_before_restart << " keys before the restart; a dry run scans " << after << "\n"
      << done.output << "\n"
      << fleet_.AllLogs();
}

TEST_F(FleetFaultsTest, AgentStoppedWithSigtermHandsBackItsShardsWithoutStartingOver) {
  // SCAN of an unchanging table is deterministic, so a dry run with the same shards and batch
  // size scans exactly what an undisturbed copy scans, duplicates included (the last SCAN of a
  // shard runs past its end).
  CliResult dry = fleet_.Watch(SubmitJob({"--dry-run"}));
  ASSERT_EQ(dry.exit_code, 0) << dry.output;
  const int64_t baseline = dry.json_int("scanned");
  ASSERT_GE(baseline, total_keys_) << dry.output;
  ASSERT_EQ(TotalKeys(*target_), 0);

  const std::string job = SubmitJob();
  WaitForTargetKeys(3000);
  const int leaving = BusyAgent();
  ASSERT_GE(leaving, 0);
  absl::StatusOr<int> code = fleet_.StopAgent(leaving, absl::Seconds(60));
  ASSERT_TRUE(code.ok()) << code.status() << "\n" << ReadFile(fleet_.agent_log(leaving));
  EXPECT_EQ(*code, 0) << ReadFile(fleet_.agent_log(leaving));
  ASSERT_LT(TotalKeys(*target_), total_keys_) << "the job ended before the stop";
  EXPECT_TRUE(fleet_.WaitForAgents(kAgents - 1).ok()) << fleet_.AllLogs();

  CliResult done = WatchUntilDone(job);
  ExpectSameData();
  // No shard started over: a returned shard (at most kSlots of them) resumes at its
  // checkpoint, so at most the batch in flight at the hand-back is scanned and written again.
  const int64_t scanned = done.json_int("scanned");
  const int64_t copied = done.json_int("copied");
  RecordProperty("baseline", std::to_string(baseline));
  RecordProperty("scanned", std::to_string(scanned));
  EXPECT_GE(copied, total_keys_) << done.output;
  EXPECT_GE(scanned, baseline) << done.output;
  EXPECT_LE(scanned, baseline + int64_t{kBatch} * kSlots) << "a dry run scans " << baseline << "\n"
                                                          << done.output << "\n"
                                                          << fleet_.AllLogs();
  EXPECT_LE(copied, baseline + int64_t{kBatch} * kSlots) << done.output;
}

}  // namespace
}  // namespace ferry::testing
