#pragma once

// The SchedulerTest fixture and its fakes, shared by scheduler_test.cc (leases) and
// scheduler_jobs_test.cc (job states). Test support only.

#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "common/testing/process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/scheduler.h"

namespace ferry::server {

using ferry::v1::AgentMessage;
using ferry::v1::ControllerMessage;
using Lease = ferry::v1::ControllerMessage::Lease;
using ::testing::HasSubstr;
using ::testing::Not;

// A shard of db `db` (into the same db) of the source node `node`.
inline ferry::v1::ShardRef Shard(const std::string& node, int bits, uint64_t index, int db = 0) {
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

}  // namespace ferry::server
