// The chaos soak (issue 15, item 2): a fleet (a real ferry-controller and three ferry-agent
// processes) runs a live job with a writer throughout and copy jobs one after the other into a
// target cluster, while a seeded schedule (tests/soak_chaos.h) kills and restarts agents and
// the controller, SIGSTOPs sources and targets, restarts a target cluster node, reshards the
// target and injects proxy faults on both sources. Every copy job must end DONE, `ferry verify`
// must say equal and the test's own comparison must find nothing; at the end the live job cuts
// over (which verifies) and its target is compared key by key too.
//
//   FERRY_SOAK_SECONDS  how long faults go on (default 180: the `make test` soak)
//   FERRY_SOAK_SEED     the schedule's seed (default: from the clock); printed first, with
//                       every fault as it happens, so a failure can be replayed.

#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/testing/compare.h"
#include "common/testing/fault_proxy.h"
#include "common/testing/redis_cluster.h"
#include "common/testing/redis_server.h"
#include "gtest/gtest.h"
#include "tests/fleet.h"
#include "tests/live_writer.h"
#include "tests/soak_chaos.h"

namespace ferry::testing {
namespace {

constexpr int kAgents = 3;
constexpr int kSlots = 2;
// A copy round: this many keys at this rate, about a minute of copying.
constexpr int kCopyKeys = 12000;
constexpr int kCopyRate = 200;
constexpr absl::Duration kRoundLength = absl::Seconds(kCopyKeys / kCopyRate);
constexpr int kLiveKeys = 3000;
constexpr absl::Duration kTargetNodeTimeout = absl::Seconds(6);

uint64_t EnvNumber(const char* name, uint64_t fallback) {
  const char* value = std::getenv(name);
  uint64_t number = 0;
  return value != nullptr && absl::SimpleAtoi(value, &number) ? number : fallback;
}

bool LiveInSync(const std::string& json) {
  return JsonScalar(json, "state") == "JOB_STATE_LIVE" &&
         absl::StrContains(json, "],\"in_sync\":true");
}

std::string Describe(const absl::StatusOr<std::vector<KeyDiff>>& diffs) {
  if (!diffs.ok()) return diffs.status().ToString();
  std::string out = absl::StrCat(diffs->size(), " keys differ");
  for (size_t i = 0; i < diffs->size() && i < 20; ++i) {
    absl::StrAppend(&out, "\n  ", DescribeDiff((*diffs)[i]));
  }
  return out;
}

// LoadMixedData's TTLs (2 to 5 minutes) would expire during the soak, each key at a moment a
// comparison may straddle (the target's copy expires at the same instant): every TTL is moved
// past the soak's end, keeping their spread.
absl::Status PushTtlsPast(redis::Connection& conn, absl::Duration soak) {
  std::string cursor = "0";
  do {
    absl::StatusOr<redis::Reply> scan = conn.Command({"SCAN", cursor, "COUNT", "1000"});
    if (!scan.ok()) return scan.status();
    cursor = std::string(scan->element(0).str());
    const redis::ReplyView keys = scan->element(1);
    for (size_t i = 0; i < keys.size(); ++i) conn.Append({"PTTL", keys.element(i).str()});
    std::vector<int64_t> ttls;
    for (size_t i = 0; i < keys.size(); ++i) {
      absl::StatusOr<redis::Reply> ttl = conn.ReadReply();
      if (!ttl.ok()) return ttl.status();
      ttls.push_back(ttl->integer());
    }
    for (size_t i = 0; i < keys.size(); ++i) {
      if (ttls[i] <= 0) continue;
      const std::string ms = absl::StrCat(ttls[i] + absl::ToInt64Milliseconds(soak));
      absl::StatusOr<redis::Reply> set = conn.Command({"PEXPIRE", keys.element(i).str(), ms});
      if (!set.ok()) return set.status();
    }
  } while (cursor != "0");
  return absl::OkStatus();
}

class SoakTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seed_ = EnvNumber("FERRY_SOAK_SEED", static_cast<uint64_t>(absl::ToUnixMicros(absl::Now())));
    seconds_ = EnvNumber("FERRY_SOAK_SECONDS", 180);
    std::cout << "soak: FERRY_SOAK_SEED=" << seed_ << " FERRY_SOAK_SECONDS=" << seconds_
              << std::endl;
    RecordProperty("seed", absl::StrCat(seed_));
    ASSERT_TRUE(RequireRedisServerBinary().ok()) << RequireRedisServerBinary();
    RedisServerOptions notifying;
    notifying.extra_config = {"notify-keyspace-events KA"};
    for (auto* server : {&copy_source_, &live_source_, &live_target_}) {
      auto started = RedisServer::Start(server == &live_source_ ? notifying : RedisServerOptions{});
      ASSERT_TRUE(started.ok()) << started.status();
      *server = *std::move(started);
    }
    // No automatic failover from a node SIGSTOPped for a few seconds (Chaos stops a cluster
    // node for at most 0.4 of this): failovers are the schedule's, graceful ones.
    RedisServerOptions node;
    node.extra_config = {
        absl::StrCat("cluster-node-timeout ", absl::ToInt64Milliseconds(kTargetNodeTimeout))};
    auto cluster = RedisCluster::Start(2, 1, node);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    copy_target_ = *std::move(cluster);
    auto copy_conn = copy_source_->Connect();
    auto live_conn = live_source_->Connect();
    ASSERT_TRUE(copy_conn.ok() && live_conn.ok());
    ASSERT_TRUE(LoadMixedData(*copy_conn, 0, kCopyKeys, seed_ % 1000, 0.2).ok());
    ASSERT_TRUE(LoadMixedData(*live_conn, 0, kLiveKeys, seed_ % 1000 + 1, 0.25).ok());
    const absl::Duration margin = absl::Seconds(seconds_) + absl::Minutes(30);
    for (redis::Connection* conn : {&*copy_conn, &*live_conn}) {
      absl::Status pushed = PushTtlsPast(*conn, margin);
      ASSERT_TRUE(pushed.ok()) << pushed;
    }
    for (auto [proxy, server] : {std::pair{&copy_proxy_, copy_source_.get()},
                                 std::pair{&live_proxy_, live_source_.get()}}) {
      FaultProxyOptions options;
      options.upstream_port = server->port();
      options.seed = seed_ + (proxy == &live_proxy_);
      options.max_stall = absl::Seconds(3);
      auto started = FaultProxy::Start(options);
      ASSERT_TRUE(started.ok()) << started.status();
      *proxy = *std::move(started);
    }
    absl::Status fleet = fleet_.StartController();
    ASSERT_TRUE(fleet.ok()) << fleet << fleet_.AllLogs();
    fleet = fleet_.StartAgents(kAgents, kSlots);
    ASSERT_TRUE(fleet.ok()) << fleet << fleet_.AllLogs();
  }

  void TearDown() override {
    if (writer_ != nullptr) (void)writer_->Stop();
    if (chaos_ == nullptr) return;
    std::cout << "soak: seed " << seed_ << ", " << chaos_->faults() << " faults, " << rounds_
              << " copy rounds\n  " << absl::StrJoin(chaos_->log(), "\n  ") << std::endl;
    RecordProperty("faults", chaos_->faults());
    RecordProperty("rounds", rounds_);
    if (HasFailure()) {
      const std::string logs = fleet_.AllLogs();
      std::cout << "soak: logs (the last 256 KB)\n"
                << logs.substr(logs.size() - std::min<size_t>(logs.size(), 256 << 10)) << std::endl;
    }
  }

  // Polls the job's state (tolerating a controller that is down) until it ends; empty when the
  // harness failed meanwhile or the job outlived any plausible copy.
  std::string WaitForEnd(const std::string& job, const std::function<void()>& meanwhile) {
    const absl::Time deadline = absl::Now() + kRoundLength * 3 + absl::Minutes(5);
    while (!HasFatalFailure() && absl::Now() < deadline) {
      const std::string state = fleet_.State(job);
      if (state == "JOB_STATE_DONE" || state == "JOB_STATE_FAILED" ||
          state == "JOB_STATE_DONE_WITH_ERRORS" || state == "JOB_STATE_CANCELLED") {
        return state;
      }
      meanwhile();
    }
    return "";
  }

  // Faults while there is time, else a short wait.
  void Fault(absl::Time end) {
    if (absl::Now() >= end) {
      absl::SleepFor(absl::Milliseconds(500));
      return;
    }
    absl::Status step = chaos_->Step();
    ASSERT_TRUE(step.ok()) << "the harness failed: " << step;
    absl::SleepFor(chaos_->NextPause());
  }

  // One copy job into the (emptied) cluster through the faults, then both checks.
  void CopyRound(absl::Time end) {
    ++rounds_;
    absl::Status healed = chaos_->Heal();
    ASSERT_TRUE(healed.ok()) << healed;
    chaos_->NewRound(rounds_);
    absl::StatusOr<std::vector<int>> primaries = copy_target_->PrimaryIndices();
    ASSERT_TRUE(primaries.ok()) << primaries.status();
    for (int index : *primaries) copy_target_->node(index).FlushAll();
    SubmitResult submit =
        fleet_.Submit({"--from", copy_proxy_->uri(), "--to", copy_target_->uri(), "--rate-limit",
                       absl::StrCat(kCopyRate), "--batch", "100", "--shards", "4", "--parallel",
                       absl::StrCat(kAgents * kSlots)});
    ASSERT_EQ(submit.exit_code, 0) << submit.out << submit.err;
    // Planning does not retry transient errors: faults begin once the job runs.
    ASSERT_TRUE(fleet_.WaitForState(submit.job_id, "JOB_STATE_RUNNING", absl::Seconds(60)).ok())
        << fleet_.StatusJson(submit.job_id).value_or("") << fleet_.AllLogs();
    const std::string state = WaitForEnd(submit.job_id, [&] { Fault(end); });
    if (HasFatalFailure()) return;
    healed = chaos_->Heal();
    ASSERT_TRUE(healed.ok()) << healed;
    ASSERT_EQ(state, "JOB_STATE_DONE")
        << "round " << rounds_ << ": " << fleet_.StatusJson(submit.job_id).value_or("");
    CliResult verify = RunFerry({"verify", "--from", copy_source_->uri(), "--to",
                                 copy_target_->uri(), "--progress", "none", "--output", "json"});
    EXPECT_EQ(verify.exit_code, 0) << "round " << rounds_ << ": " << verify.output;
    auto diffs = CompareDeployments(copy_source_->endpoint(), 0, copy_target_->endpoint(), 0);
    EXPECT_TRUE(diffs.ok() && diffs->empty()) << "round " << rounds_ << ": " << Describe(diffs);
    if (!HasFailure()) std::cout << "soak: round " << rounds_ << " equal" << std::endl;
  }

  uint64_t seed_ = 0;
  uint64_t seconds_ = 0;
  int rounds_ = 0;
  std::unique_ptr<RedisServer> copy_source_, live_source_, live_target_;
  std::unique_ptr<RedisCluster> copy_target_;
  std::unique_ptr<FaultProxy> copy_proxy_, live_proxy_;
  std::unique_ptr<LiveWriter> writer_;
  Fleet fleet_;
  std::unique_ptr<Chaos> chaos_;
};

TEST_F(SoakTest, EveryKeyArrivesThroughSeededChaos) {
  // The live job: in sync before the faults begin.
  LiveWriterOptions writing;
  writing.ops_per_second = 300;
  writing.seed = seed_;
  writer_ = std::make_unique<LiveWriter>(live_source_->endpoint(), 0, writing);
  writer_->Start();
  SubmitResult live =
      fleet_.Submit({"--live", "--from", live_proxy_->uri(), "--to", live_target_->uri()});
  ASSERT_EQ(live.exit_code, 0) << live.out << live.err;
  std::string json;
  ASSERT_TRUE(WaitFor(
                  [&] {
                    json = fleet_.StatusJson(live.job_id).value_or("");
                    return LiveInSync(json);
                  },
                  absl::Seconds(120), absl::Milliseconds(250))
                  .ok())
      << json << fleet_.AllLogs();

  ChaosTargets targets;
  targets.fleet = &fleet_;
  targets.agents = kAgents;
  targets.agent_slots = kSlots;
  targets.copy_source = copy_source_.get();
  targets.live_source = live_source_.get();
  targets.copy_target = copy_target_.get();
  targets.live_target = live_target_.get();
  targets.copy_proxy = copy_proxy_.get();
  targets.live_proxy = live_proxy_.get();
  targets.node_timeout = kTargetNodeTimeout;
  chaos_ = std::make_unique<Chaos>(targets, seed_);
  const absl::Time end = absl::Now() + absl::Seconds(seconds_);
  // A round starts only when most of it would see faults; the time left goes to the live job.
  do {
    CopyRound(end);
    if (HasFailure()) return;
  } while (end - absl::Now() > kRoundLength * 0.7);
  while (absl::Now() < end) {
    Fault(end);
    if (HasFatalFailure()) return;
  }

  absl::Status healed = chaos_->Heal();
  ASSERT_TRUE(healed.ok()) << healed;
  absl::Status stopped = writer_->Stop();
  EXPECT_TRUE(stopped.ok()) << stopped;
  EXPECT_GT(writer_->ops(), 1000u);
  ASSERT_TRUE(WaitFor(
                  [&] {
                    json = fleet_.StatusJson(live.job_id).value_or("");
                    return LiveInSync(json);
                  },
                  absl::Seconds(180), absl::Milliseconds(250))
                  .ok())
      << json;
  CliResult cutover = fleet_.Ferry("cutover", {live.job_id}, {}, absl::Minutes(5));
  EXPECT_EQ(cutover.exit_code, 0) << cutover.output;
  EXPECT_EQ(fleet_.State(live.job_id), "JOB_STATE_CUTOVER_READY");
  json = fleet_.StatusJson(live.job_id).value_or("");
  std::cout << "soak: live job: " << JsonInt(json, "gaps") << " gaps, " << JsonInt(json, "rescans")
            << " rescans" << std::endl;
  auto src = live_source_->Connect();
  auto dst = live_target_->Connect();
  ASSERT_TRUE(src.ok() && dst.ok());
  EXPECT_TRUE(SameData(*src, *dst));
  EXPECT_GE(chaos_->faults(), static_cast<int>(seconds_ / 15)) << "too few faults";
}

}  // namespace
}  // namespace ferry::testing
