// The Scheduler's leases: grants, epochs, expiry, heartbeats, fairness, rate shares, restarts.

#include "server/scheduler_test_fixture.h"

namespace ferry::server {
namespace {

TEST_F(SchedulerTest, LeasesCarryPasswordsAndAcksFollowCommittedCheckpoints) {
  std::string job = Submit();
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_PENDING);
  Plan(job, 2);
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_PENDING);  // No agent yet.
  FakeAgent agent = Connect(1);
  std::vector<Lease> leases = agent.sender->Leases();
  ASSERT_EQ(leases.size(), 1u);
  EXPECT_EQ(leases[0].epoch(), 1u);
  EXPECT_EQ(leases[0].job_id(), job);
  EXPECT_EQ(leases[0].source().password(), "source-pass-123");
  EXPECT_EQ(leases[0].target().password(), "target-pass-456");
  EXPECT_EQ(leases[0].batch_keys(), 1000);
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_RUNNING);

  ASSERT_TRUE(Progress(agent, leases[0], 77, 10).ok());
  auto acks = agent.sender->Take(ControllerMessage::kAck);
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].ack().lease_id(), leases[0].lease_id());
  auto shown = scheduler_->GetJob(job, true);
  ASSERT_TRUE(shown.ok());
  EXPECT_EQ(shown->progress().counters().scanned(), 10u);
  EXPECT_EQ(shown->progress().shards_running(), 1);
  EXPECT_EQ(shown->shards(0).cursor(), 77u);
}

TEST_F(SchedulerTest, AnswersNeverContainPasswords) {
  std::string job = Submit();
  Plan(job, 1);
  auto shown = scheduler_->GetJob(job, true);
  ASSERT_TRUE(shown.ok());
  EXPECT_THAT(shown->DebugString(), Not(HasSubstr("pass-")));
  for (const auto& listed : scheduler_->ListJobs()) {
    EXPECT_THAT(listed.DebugString(), Not(HasSubstr("pass-")));
  }
}

TEST_F(SchedulerTest, ExpiredLeaseGoesBackAtItsCheckpointAndOldEpochIsRefused) {
  std::string job = Submit();
  Plan(job, 1);
  FakeAgent a = Connect(1);
  Lease first = a.sender->Leases().at(0);
  ASSERT_TRUE(Progress(a, first, 4242, 5).ok());

  now_ += kLeaseTimeout - absl::Seconds(1);
  EXPECT_EQ(scheduler_->ExpireLeases(now_), 0);
  now_ += absl::Seconds(2);  // a has been silent for longer than the lease timeout.
  EXPECT_EQ(scheduler_->ExpireLeases(now_), 1);
  EXPECT_EQ(a.sender->Take(ControllerMessage::kRevoke).size(), 1u);

  FakeAgent b = Connect(1);
  std::vector<Lease> second = b.sender->Leases();
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].epoch(), 2u);
  EXPECT_NE(second[0].lease_id(), first.lease_id());
  EXPECT_EQ(second[0].resume().cursor(), 4242u);
  EXPECT_EQ(second[0].resume().run_id(), "run-1");

  // a wakes up and reports under its old lease: refused, and told to stop.
  a.sender->Take(ControllerMessage::kAck);
  EXPECT_EQ(Progress(a, first, 9999, 50).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(a.sender->Take(ControllerMessage::kRevoke).size(), 1u);
  EXPECT_TRUE(a.sender->Take(ControllerMessage::kAck).empty());
  EXPECT_EQ(scheduler_->GetJob(job, true)->shards(0).cursor(), 4242u);
  // The same lease id with a forged epoch is refused too.
  Lease forged = second[0];
  forged.set_epoch(1);
  EXPECT_EQ(Progress(b, forged, 1, 1).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Progress(b, second[0], 5000, 6).ok());
}

TEST_F(SchedulerTest, HeartbeatsKeepLeasesAlive) {
  std::string job = Submit();
  Plan(job, 1);
  FakeAgent a = Connect(1);
  ASSERT_EQ(a.sender->Leases().size(), 1u);
  for (int i = 0; i < 10; ++i) {
    now_ += absl::Seconds(5);
    Heartbeat(a);
    EXPECT_EQ(scheduler_->ExpireLeases(now_), 0);
  }
}

TEST_F(SchedulerTest, DisconnectReturnsShardsToTheQueue) {
  std::string job = Submit();
  Plan(job, 2);
  FakeAgent a = Connect(2);
  std::vector<Lease> leases = a.sender->Leases();
  ASSERT_EQ(leases.size(), 2u);
  ASSERT_TRUE(Progress(a, leases[1], 31, 3).ok());
  scheduler_->DisconnectAgent(a.id);
  FakeAgent b = Connect(2);
  std::vector<Lease> again = b.sender->Leases();
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[1].resume().cursor(), 31u);
  EXPECT_EQ(scheduler_->ListAgents().size(), 1u);
}

TEST_F(SchedulerTest, RunsAtMostParallelShardsPerSourceNode) {
  std::string job = Submit(/*rate_limit=*/0, /*parallel=*/2);
  PlanResult plan;
  for (int i = 0; i < 4; ++i) plan.shards.push_back(Shard("node-a:6379", 2, uint64_t(i)));
  for (int i = 0; i < 4; ++i) plan.shards.push_back(Shard("node-b:6379", 2, uint64_t(i)));
  ASSERT_TRUE(scheduler_->SetPlan(job, plan).ok());
  FakeAgent agent = Connect(10);
  std::vector<Lease> leases = agent.sender->Leases();
  ASSERT_EQ(leases.size(), 4u);
  int on_a = 0;
  for (const Lease& lease : leases) on_a += lease.shard().source_node() == "node-a:6379";
  EXPECT_EQ(on_a, 2);
  // Finishing a shard of node a frees a place on node a only.
  const Lease* a_lease = nullptr;
  for (const Lease& lease : leases) {
    if (lease.shard().source_node() == "node-a:6379") a_lease = &lease;
  }
  ASSERT_TRUE(Finish(agent, *a_lease).ok());
  std::vector<Lease> next = agent.sender->Leases();
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].shard().source_node(), "node-a:6379");
}

// A spec that left --parallel to ferry gets the planner's choice, kept with the job; a given
// one stays.
TEST_F(SchedulerTest, ThePlannersParallelAppliesOnlyWhereTheSpecLeftItOpen) {
  std::string open = Submit(/*rate_limit=*/0, /*parallel=*/0);
  PlanResult plan;
  for (int i = 0; i < 8; ++i) plan.shards.push_back(Shard("node-a:6379", 3, uint64_t(i)));
  plan.parallel = 6;
  ASSERT_TRUE(scheduler_->SetPlan(open, plan).ok());
  FakeAgent agent = Connect(20);
  EXPECT_EQ(agent.sender->Leases().size(), 6u);
  auto shown = scheduler_->GetJob(open, false);
  ASSERT_TRUE(shown.ok()) << shown.status();
  EXPECT_EQ(shown->spec().parallel(), 6);

  std::string given = Submit(/*rate_limit=*/0, /*parallel=*/2);
  PlanResult other;
  for (int i = 0; i < 8; ++i) other.shards.push_back(Shard("node-b:6379", 3, uint64_t(i)));
  other.parallel = 6;
  ASSERT_TRUE(scheduler_->SetPlan(given, other).ok());
  EXPECT_EQ(agent.sender->Leases().size(), 2u);
}

TEST_F(SchedulerTest, SharesAgentsFairlyBetweenJobs) {
  std::string first = Submit();
  std::string second = Submit();
  Plan(first, 8);
  Plan(second, 8);
  FakeAgent agent = Connect(4);
  int of_first = 0, of_second = 0;
  for (const Lease& lease : agent.sender->Leases()) {
    of_first += lease.job_id() == first;
    of_second += lease.job_id() == second;
  }
  EXPECT_EQ(of_first, 2);
  EXPECT_EQ(of_second, 2);
}

TEST_F(SchedulerTest, SplitsTheRateLimitOverRunningShards) {
  std::string job = Submit(/*rate_limit=*/100);
  Plan(job, 2);
  FakeAgent agent = Connect(2);
  std::vector<Lease> leases = agent.sender->Leases();
  ASSERT_EQ(leases.size(), 2u);
  EXPECT_DOUBLE_EQ(leases[0].keys_per_second(), 100);
  EXPECT_DOUBLE_EQ(leases[1].keys_per_second(), 50);
  auto updates = agent.sender->Take(ControllerMessage::kRateUpdate);
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(updates[0].rate_update().lease_id(), leases[0].lease_id());
  EXPECT_DOUBLE_EQ(updates[0].rate_update().keys_per_second(), 50);
  ASSERT_TRUE(Finish(agent, leases[0]).ok());
  updates = agent.sender->Take(ControllerMessage::kRateUpdate);
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(updates[0].rate_update().lease_id(), leases[1].lease_id());
  EXPECT_DOUBLE_EQ(updates[0].rate_update().keys_per_second(), 100);
}

TEST_F(SchedulerTest, SplitsTheByteRateLimitOverRunningShardsToo) {
  ferry::v1::JobSpec spec;
  spec.mutable_source()->set_uri("redis://127.0.0.1:6379");
  spec.mutable_target()->set_uri("redis://127.0.0.1:6380");
  spec.set_rate_limit_bytes(4e6);
  absl::StatusOr<std::string> job = scheduler_->SubmitJob(spec);
  ASSERT_TRUE(job.ok()) << job.status();
  Plan(*job, 2);
  FakeAgent agent = Connect(2);
  std::vector<Lease> leases = agent.sender->Leases();
  ASSERT_EQ(leases.size(), 2u);
  EXPECT_DOUBLE_EQ(leases[0].bytes_per_second(), 4e6);
  EXPECT_DOUBLE_EQ(leases[1].bytes_per_second(), 2e6);
  EXPECT_DOUBLE_EQ(leases[1].keys_per_second(), 0);  // No key limit was asked for.
  auto updates = agent.sender->Take(ControllerMessage::kRateUpdate);
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_DOUBLE_EQ(updates[0].rate_update().bytes_per_second(), 2e6);
  ASSERT_TRUE(Finish(agent, leases[0]).ok());
  updates = agent.sender->Take(ControllerMessage::kRateUpdate);
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(updates[0].rate_update().lease_id(), leases[1].lease_id());
  EXPECT_DOUBLE_EQ(updates[0].rate_update().bytes_per_second(), 4e6);
}

TEST_F(SchedulerTest, RestartKeepsCheckpointsAndTakesBackLeases) {
  std::string job = Submit();
  Plan(job, 2);
  FakeAgent a = Connect(2);
  std::vector<Lease> leases = a.sender->Leases();
  ASSERT_EQ(leases.size(), 2u);
  ASSERT_TRUE(Progress(a, leases[0], 123456, 40, /*failed_keys=*/1).ok());
  ASSERT_TRUE(Finish(a, leases[1]).ok());

  Reopen();
  auto shown = scheduler_->GetJob(job, true);
  ASSERT_TRUE(shown.ok());
  EXPECT_EQ(shown->state(), ferry::v1::JOB_STATE_RUNNING);
  EXPECT_EQ(shown->shards(0).state(), ferry::v1::SHARD_STATE_PENDING);
  EXPECT_EQ(shown->shards(0).cursor(), 123456u);
  EXPECT_EQ(shown->shards(1).state(), ferry::v1::SHARD_STATE_DONE);
  EXPECT_EQ(shown->progress().counters().scanned(), 40u);

  FakeAgent b = Connect(2);
  std::vector<Lease> resumed = b.sender->Leases();
  ASSERT_EQ(resumed.size(), 1u);  // The finished shard is not copied again.
  EXPECT_EQ(resumed[0].epoch(), 2u);
  EXPECT_EQ(resumed[0].resume().cursor(), 123456u);
  // The old agent's lease died with the old process.
  EXPECT_EQ(Progress(b, leases[0], 1, 1).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(Finish(b, resumed[0]).ok());
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_DONE_WITH_ERRORS);  // One key failed before.
  ferry::v1::ListFailedKeysRequest request;
  request.set_job_id(job);
  auto failed = scheduler_->ListFailedKeys(request);
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(failed->total(), 1u);
  ASSERT_EQ(failed->keys_size(), 1);
  EXPECT_EQ(failed->keys(0).key(), "key0");
}

}  // namespace
}  // namespace ferry::server
