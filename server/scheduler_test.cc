#include "server/scheduler.h"

#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "common/testing/process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::server {
namespace {

using ferry::v1::AgentMessage;
using ferry::v1::ControllerMessage;
using Lease = ferry::v1::ControllerMessage::Lease;
using ::testing::HasSubstr;
using ::testing::Not;

// A shard of db `db` (into the same db) of the source node `node`.
ferry::v1::ShardRef Shard(const std::string& node, int bits, uint64_t index, int db = 0) {
  ferry::v1::ShardRef shard;
  shard.set_source_node(node);
  shard.set_source_db(db);
  shard.set_target_db(db);
  shard.set_shard_bits(bits);
  shard.set_shard_index(index);
  return shard;
}

constexpr absl::Duration kLeaseTimeout = absl::Seconds(15);

// What the scheduler sent to one agent.
class RecordingSender : public AgentSender {
 public:
  void Send(const ControllerMessage& message) override {
    absl::MutexLock lock(&mu_);
    messages_.push_back(message);
  }
  // Messages of one kind sent since the last call for that kind.
  std::vector<ControllerMessage> Take(ControllerMessage::MsgCase kind) {
    absl::MutexLock lock(&mu_);
    std::vector<ControllerMessage> taken, kept;
    for (auto& m : messages_) (m.msg_case() == kind ? taken : kept).push_back(m);
    messages_ = kept;
    return taken;
  }
  std::vector<Lease> Leases() {
    std::vector<Lease> out;
    for (auto& m : Take(ControllerMessage::kLease)) out.push_back(m.lease());
    return out;
  }

 private:
  absl::Mutex mu_;
  std::vector<ControllerMessage> messages_ ABSL_GUARDED_BY(mu_);
};

struct FakeAgent {
  std::string id;
  std::shared_ptr<RecordingSender> sender;
};

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::ferry::testing::ProcessTempDir() + "/scheduler_test-" + std::to_string(getpid()) +
            "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".db";
    unlink(path_.c_str());
    unlink((path_ + "-wal").c_str());
    unlink((path_ + "-shm").c_str());
    Reopen();
  }

  // Simulates a controller restart: a new store and scheduler on the same file.
  void Reopen() {
    scheduler_.reset();
    store_.reset();
    auto store = JobStore::Open(path_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    SchedulerOptions options;
    options.lease_timeout = kLeaseTimeout;
    options.clock = [this] { return now_; };
    auto scheduler = Scheduler::Create(store_.get(), options);
    ASSERT_TRUE(scheduler.ok()) << scheduler.status();
    scheduler_ = std::move(*scheduler);
  }

  std::string Submit(double rate_limit = 0, int parallel = 0) {
    ferry::v1::JobSpec spec;
    spec.mutable_source()->set_uri("redis://127.0.0.1:6379");
    spec.mutable_source()->set_password("source-pass-123");
    spec.mutable_target()->set_uri("redis://127.0.0.1:6380");
    spec.mutable_target()->set_password("target-pass-456");
    spec.set_rate_limit(rate_limit);
    spec.set_parallel(parallel);
    auto id = scheduler_->SubmitJob(spec);
    EXPECT_TRUE(id.ok()) << id.status();
    return *id;
  }

  // Plans `count` shards of db 0 on `node`.
  void Plan(const std::string& job_id, int count, const std::string& node = "") {
    PlanResult plan;
    int bits = 0;
    while ((1 << bits) < count) ++bits;
    for (int i = 0; i < count; ++i) {
      plan.shards.push_back(Shard(node, bits, static_cast<uint64_t>(i)));
    }
    plan.estimated_keys = 1000;
    ASSERT_TRUE(scheduler_->SetPlan(job_id, plan).ok());
  }

  FakeAgent Connect(int slots) {
    FakeAgent agent;
    agent.sender = std::make_shared<RecordingSender>();
    agent.id = scheduler_->RegisterAgent("host", slots, "ipv4:127.0.0.1:1", agent.sender);
    EXPECT_EQ(agent.sender->Take(ControllerMessage::kRegistered).size(), 1u);
    return agent;
  }

  absl::Status Progress(const FakeAgent& agent, const Lease& lease, uint64_t cursor,
                        uint64_t scanned, int failed_keys = 0) {
    AgentMessage message;
    auto* progress = message.mutable_progress();
    progress->set_lease_id(lease.lease_id());
    progress->set_epoch(lease.epoch());
    progress->mutable_checkpoint()->set_cursor(cursor);
    progress->mutable_checkpoint()->set_run_id("run-1");
    progress->mutable_checkpoint()->mutable_counters()->set_scanned(scanned);
    progress->mutable_checkpoint()->mutable_counters()->set_copied(scanned);
    progress->mutable_checkpoint()->mutable_counters()->set_failed(failed_keys);
    for (int i = 0; i < failed_keys; ++i) {
      auto* key = progress->add_failed_keys();
      key->set_key("key" + std::to_string(i));
      key->set_reason("too big");
    }
    return scheduler_->HandleAgentMessage(agent.id, message);
  }

  absl::Status Finish(const FakeAgent& agent, const Lease& lease, int code = 0,
                      const std::string& message_text = "") {
    AgentMessage message;
    auto* finished = message.mutable_finished();
    finished->set_lease_id(lease.lease_id());
    finished->set_epoch(lease.epoch());
    finished->mutable_checkpoint()->set_done(code == 0);
    finished->set_status_code(code);
    finished->set_status_message(message_text);
    return scheduler_->HandleAgentMessage(agent.id, message);
  }

  absl::Status Return(const FakeAgent& agent, const Lease& lease, uint64_t cursor,
                      bool draining = false) {
    AgentMessage message;
    auto* returned = message.mutable_returned();
    returned->set_lease_id(lease.lease_id());
    returned->set_epoch(lease.epoch());
    returned->mutable_checkpoint()->set_cursor(cursor);
    returned->set_draining(draining);
    return scheduler_->HandleAgentMessage(agent.id, message);
  }

  void Heartbeat(const FakeAgent& agent) {
    AgentMessage message;
    message.mutable_heartbeat();
    ASSERT_TRUE(scheduler_->HandleAgentMessage(agent.id, message).ok());
  }

  ferry::v1::JobState State(const std::string& job_id) {
    auto job = scheduler_->GetJob(job_id, false);
    EXPECT_TRUE(job.ok());
    return job->state();
  }

  std::string path_;
  absl::Time now_ = absl::FromUnixSeconds(1700000000);
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<Scheduler> scheduler_;
};

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

TEST_F(SchedulerTest, JobIsDoneWhenEveryShardFinished) {
  std::string job = Submit();
  Plan(job, 2);
  FakeAgent a = Connect(2);
  std::vector<Lease> leases = a.sender->Leases();
  ASSERT_TRUE(Finish(a, leases[0]).ok());
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_RUNNING);
  ASSERT_TRUE(Finish(a, leases[1]).ok());
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_DONE);
  EXPECT_EQ(scheduler_->CancelJob(job).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(SchedulerTest, EmptyPlanIsDoneAtOnce) {
  std::string job = Submit();
  Plan(job, 0);
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_DONE);
}

TEST_F(SchedulerTest, PlanningErrorFailsTheJobWithoutPasswords) {
  std::string job = Submit();
  EXPECT_EQ(scheduler_->JobsToPlan(), std::vector<std::string>{job});
  ASSERT_TRUE(
      scheduler_->FailPlanning(job, absl::UnauthenticatedError("AUTH source-pass-123 refused"))
          .ok());
  auto shown = scheduler_->GetJob(job, false);
  EXPECT_EQ(shown->state(), ferry::v1::JOB_STATE_FAILED);
  EXPECT_THAT(shown->error(), HasSubstr("refused"));
  EXPECT_THAT(shown->error(), Not(HasSubstr("source-pass-123")));
  EXPECT_TRUE(scheduler_->JobsToPlan().empty());
}

TEST_F(SchedulerTest, FatalShardErrorFailsTheJobAndResumeRetriesIt) {
  std::string job = Submit();
  Plan(job, 2);
  FakeAgent a = Connect(2);
  std::vector<Lease> leases = a.sender->Leases();
  ASSERT_TRUE(Finish(a, leases[0], static_cast<int>(absl::StatusCode::kResourceExhausted),
                     "OOM on the target")
                  .ok());
  auto shown = scheduler_->GetJob(job, false);
  EXPECT_EQ(shown->state(), ferry::v1::JOB_STATE_FAILED);
  EXPECT_THAT(shown->error(), HasSubstr("OOM on the target"));
  auto revokes = a.sender->Take(ControllerMessage::kRevoke);
  ASSERT_EQ(revokes.size(), 1u);
  EXPECT_EQ(revokes[0].revoke().lease_id(), leases[1].lease_id());
  ASSERT_TRUE(Return(a, leases[1], 55).ok());
  EXPECT_TRUE(a.sender->Leases().empty());

  ASSERT_TRUE(scheduler_->ResumeJob(job).ok());
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_RUNNING);
  std::vector<Lease> retried = a.sender->Leases();
  ASSERT_EQ(retried.size(), 2u);
  for (const Lease& lease : retried) ASSERT_TRUE(Finish(a, lease).ok());
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_DONE);
}

TEST_F(SchedulerTest, RetryableErrorsRequeueTheShardAFewTimes) {
  std::string job = Submit();
  Plan(job, 1);
  FakeAgent a = Connect(1);
  const int unavailable = static_cast<int>(absl::StatusCode::kUnavailable);
  ASSERT_TRUE(
      Finish(a, a.sender->Leases().at(0), static_cast<int>(absl::StatusCode::kCancelled)).ok());
  for (int i = 0; i < 5; ++i) {
    std::vector<Lease> leases = a.sender->Leases();
    ASSERT_EQ(leases.size(), 1u) << "attempt " << i;
    ASSERT_TRUE(Finish(a, leases[0], unavailable, "source unreachable").ok());
    EXPECT_EQ(State(job), ferry::v1::JOB_STATE_RUNNING);
  }
  ASSERT_TRUE(Finish(a, a.sender->Leases().at(0), unavailable, "source unreachable").ok());
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_FAILED);
}

TEST_F(SchedulerTest, PauseRevokesLeasesAndResumeContinuesFromTheCheckpoint) {
  std::string job = Submit();
  Plan(job, 1);
  FakeAgent a = Connect(1);
  Lease lease = a.sender->Leases().at(0);
  ASSERT_TRUE(scheduler_->PauseJob(job).ok());
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_PAUSED);
  ASSERT_EQ(a.sender->Take(ControllerMessage::kRevoke).size(), 1u);
  ASSERT_TRUE(Return(a, lease, 999).ok());
  EXPECT_EQ(a.sender->Take(ControllerMessage::kAck).size(), 1u);
  EXPECT_TRUE(a.sender->Leases().empty());      // Paused: nothing is leased again.
  EXPECT_TRUE(scheduler_->PauseJob(job).ok());  // Pausing twice is fine.

  ASSERT_TRUE(scheduler_->ResumeJob(job).ok());
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_RUNNING);
  std::vector<Lease> again = a.sender->Leases();
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].resume().cursor(), 999u);
  EXPECT_EQ(again[0].epoch(), 2u);
}

TEST_F(SchedulerTest, RevokedLeaseNotReturnedExpires) {
  std::string job = Submit();
  Plan(job, 1);
  FakeAgent a = Connect(1);
  ASSERT_EQ(a.sender->Leases().size(), 1u);
  ASSERT_TRUE(scheduler_->PauseJob(job).ok());
  for (int i = 0; i < 4; ++i) {
    now_ += absl::Seconds(5);
    Heartbeat(a);  // Heartbeats do not keep a revoked lease.
  }
  EXPECT_EQ(scheduler_->ExpireLeases(now_), 1);
}

TEST_F(SchedulerTest, CancelRevokesLeasesAndEndsTheJob) {
  std::string job = Submit();
  Plan(job, 2);
  FakeAgent a = Connect(1);
  Lease lease = a.sender->Leases().at(0);
  ASSERT_TRUE(scheduler_->CancelJob(job).ok());
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_CANCELLED);
  ASSERT_EQ(a.sender->Take(ControllerMessage::kRevoke).size(), 1u);
  ASSERT_TRUE(Return(a, lease, 10).ok());
  EXPECT_TRUE(a.sender->Leases().empty());
  EXPECT_EQ(scheduler_->CancelJob(job).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(scheduler_->PauseJob(job).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(scheduler_->ResumeJob(job).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(SchedulerTest, DrainingAgentGetsNoMoreLeases) {
  std::string job = Submit();
  Plan(job, 2);
  FakeAgent a = Connect(1);
  Lease lease = a.sender->Leases().at(0);
  ASSERT_TRUE(Return(a, lease, 5, /*draining=*/true).ok());
  EXPECT_TRUE(a.sender->Leases().empty());
  FakeAgent b = Connect(2);
  EXPECT_EQ(b.sender->Leases().size(), 2u);
}

TEST_F(SchedulerTest, UnknownJobIsNotFound) {
  EXPECT_EQ(scheduler_->GetJob("nope", false).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(scheduler_->CancelJob("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(scheduler_->PauseJob("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(scheduler_->ResumeJob("nope").status().code(), absl::StatusCode::kNotFound);
  ferry::v1::ListFailedKeysRequest request;
  request.set_job_id("nope");
  EXPECT_EQ(scheduler_->ListFailedKeys(request).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SchedulerTest, ReportsRatesAndEta) {
  std::string job = Submit();
  Plan(job, 1);  // 1000 estimated keys.
  FakeAgent a = Connect(1);
  Lease lease = a.sender->Leases().at(0);
  ASSERT_TRUE(Progress(a, lease, 1, 0).ok());
  now_ += absl::Seconds(2);
  ASSERT_TRUE(Progress(a, lease, 2, 200).ok());
  auto shown = scheduler_->GetJob(job, false);
  EXPECT_DOUBLE_EQ(shown->progress().keys_per_second(), 100);
  EXPECT_DOUBLE_EQ(shown->progress().eta_seconds(), 8);
}

}  // namespace
}  // namespace ferry::server
