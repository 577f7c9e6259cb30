// Live jobs in the Scheduler: snapshot shards wait for their watch's subscription, dirty keys are
// applied only after a complete pass, a gap starts a rescan, the cutover converges or gives up.

#include "server/scheduler_test_fixture.h"

namespace ferry::server {
namespace {

using ferry::v1::LiveStatus;

class LiveSchedulerTest : public SchedulerTest {
 protected:
  // A live job of one standalone source: its watch, `forward` snapshot shards and one reverse
  // shard over the target.
  std::string SubmitAndPlan(int forward = 2) {
    ferry::v1::JobSpec spec;
    spec.mutable_source()->set_uri("redis://127.0.0.1:6379");
    spec.mutable_source()->set_password("source-pass-123");
    spec.mutable_target()->set_uri("redis://127.0.0.1:6380");
    spec.set_live(true);
    auto id = scheduler_->SubmitJob(spec);
    EXPECT_TRUE(id.ok()) << id.status();
    PlanResult plan;
    for (int i = 0; i < forward; ++i) plan.shards.push_back(Shard("", 1, uint64_t(i)));
    ferry::v1::ShardRef watch = Shard("", -1, 0);
    watch.set_watch(true);
    plan.shards.push_back(watch);
    ferry::v1::ShardRef reverse = Shard("127.0.0.1:6380", 0, 0);
    reverse.set_reverse(true);
    plan.shards.push_back(reverse);
    EXPECT_TRUE(scheduler_->SetPlan(*id, plan).ok());
    return *id;
  }

  absl::Status Report(const FakeAgent& agent, const Lease& lease, const LiveStatus& live) {
    AgentMessage message;
    auto* progress = message.mutable_progress();
    progress->set_lease_id(lease.lease_id());
    progress->set_epoch(lease.epoch());
    *progress->mutable_checkpoint()->mutable_live() = live;
    return scheduler_->HandleAgentMessage(agent.id, message);
  }

  static LiveStatus Subscribed(uint64_t subscriptions, uint64_t gaps = 0, bool applying = false) {
    LiveStatus live;
    live.set_applying(applying);
    live.set_subscriptions(subscriptions);
    live.set_subscribed(true);
    live.set_gaps(gaps);
    if (gaps > 0) live.set_last_gap("the subscriber connection was closed");
    return live;
  }

  // The LiveControl messages sent to `agent` since the last call.
  static std::vector<ControllerMessage::LiveControl> Controls(const FakeAgent& agent) {
    std::vector<ControllerMessage::LiveControl> out;
    for (auto& m : agent.sender->Take(ControllerMessage::kLiveControl)) {
      out.push_back(m.live_control());
    }
    return out;
  }

  // Finishes every lease in `leases` but the watch; returns the watch lease if among them.
  void FinishAllBut(const FakeAgent& agent, const std::vector<Lease>& leases) {
    for (const Lease& lease : leases) {
      if (!lease.shard().watch()) {
        ASSERT_TRUE(Finish(agent, lease).ok());
      }
    }
  }

  // Subscribes the watch and finishes the snapshot, leaving the job LIVE; returns the watch.
  Lease GoLive(const std::string& job, const FakeAgent& agent) {
    std::vector<Lease> leases = agent.sender->Leases();
    EXPECT_EQ(leases.size(), 1u);
    Lease watch = leases.at(0);
    EXPECT_TRUE(watch.shard().watch());
    EXPECT_TRUE(Report(agent, watch, Subscribed(1)).ok());
    for (int round = 0; round < 4; ++round) FinishAllBut(agent, agent.sender->Leases());
    EXPECT_EQ(State(job), ferry::v1::JOB_STATE_LIVE);
    return watch;
  }
};

TEST_F(LiveSchedulerTest, SnapshotWaitsForTheSubscriptionAndApplyForTheCompletePass) {
  std::string job = SubmitAndPlan();
  FakeAgent agent = Connect(4);
  std::vector<Lease> leases = agent.sender->Leases();
  ASSERT_EQ(leases.size(), 1u) << "only the watch, before it subscribed";
  const Lease watch = leases[0];
  EXPECT_TRUE(watch.shard().watch());
  EXPECT_GT(watch.live_dirty_bytes(), 0u);

  ASSERT_TRUE(Report(agent, watch, Subscribed(1)).ok());
  leases = agent.sender->Leases();
  ASSERT_EQ(leases.size(), 2u) << "both snapshot shards, and no reverse shard";
  for (const Lease& lease : leases) EXPECT_FALSE(lease.shard().reverse());
  ASSERT_TRUE(Finish(agent, leases[0]).ok());
  EXPECT_TRUE(Controls(agent).empty()) << "no apply while a snapshot shard runs";
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_RUNNING);
  ASSERT_TRUE(Finish(agent, leases[1]).ok());
  std::vector<ControllerMessage::LiveControl> controls = Controls(agent);
  ASSERT_EQ(controls.size(), 1u);
  EXPECT_TRUE(controls[0].apply());
  EXPECT_EQ(controls[0].subscription(), 1u);
  EXPECT_EQ(controls[0].lease_id(), watch.lease_id());
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_LIVE);
  auto shown = scheduler_->GetJob(job, false);
  ASSERT_TRUE(shown.ok());
  ASSERT_EQ(shown->live().nodes_size(), 1);
  EXPECT_FALSE(shown->live().in_sync()) << "not before the watcher says it applies";
  ASSERT_TRUE(Report(agent, watch, Subscribed(1, 0, true)).ok());
  shown = scheduler_->GetJob(job, false);
  EXPECT_TRUE(shown->live().in_sync());
  EXPECT_EQ(shown->live().nodes(0).state(), "in sync");
  EXPECT_EQ(shown->progress().shards_total(), 3) << "the watch is not counted as a shard";
}

TEST_F(LiveSchedulerTest, AGapRescansTheNodeAndApplyWaitsForTheNewSubscription) {
  std::string job = SubmitAndPlan();
  FakeAgent agent = Connect(4);
  const Lease watch = GoLive(job, agent);
  Controls(agent);

  // The watcher lost its subscription and subscribed again.
  ASSERT_TRUE(Report(agent, watch, Subscribed(2, 1)).ok());
  std::vector<ControllerMessage::LiveControl> controls = Controls(agent);
  ASSERT_FALSE(controls.empty());
  EXPECT_FALSE(controls.back().apply());
  std::vector<Lease> rescan = agent.sender->Leases();
  ASSERT_EQ(rescan.size(), 3u) << "both forward shards and the reverse shard";
  int reverse = 0;
  for (const Lease& lease : rescan) {
    EXPECT_EQ(lease.resume().pass(), 1u);
    EXPECT_EQ(lease.resume().cursor(), 0u);
    reverse += lease.shard().reverse() ? 1 : 0;
  }
  EXPECT_EQ(reverse, 1);
  auto shown = scheduler_->GetJob(job, false);
  ASSERT_TRUE(shown.ok());
  EXPECT_FALSE(shown->live().in_sync());
  EXPECT_EQ(shown->live().nodes(0).state(), "rescanning");
  EXPECT_EQ(shown->live().gaps(), 1u);
  EXPECT_THAT(shown->live().nodes(0).status().last_gap(), HasSubstr("closed"));

  FinishAllBut(agent, rescan);
  controls = Controls(agent);
  ASSERT_EQ(controls.size(), 1u);
  EXPECT_TRUE(controls[0].apply());
  EXPECT_EQ(controls[0].subscription(), 2u) << "apply for the subscription after the gap";
  ASSERT_TRUE(Report(agent, watch, Subscribed(2, 1, true)).ok());
  EXPECT_TRUE(scheduler_->GetJob(job, false)->live().in_sync());
  EXPECT_EQ(scheduler_->GetJob(job, false)->live().rescans(), 1u);
}

TEST_F(LiveSchedulerTest, ANewWatcherAfterTheSnapshotBeganIsAGap) {
  std::string job = SubmitAndPlan(1);
  FakeAgent a = Connect(4);
  const Lease watch = a.sender->Leases().at(0);
  ASSERT_TRUE(Report(a, watch, Subscribed(1)).ok());
  ASSERT_EQ(a.sender->Leases().size(), 1u);  // The snapshot shard began.
  scheduler_->DisconnectAgent(a.id);

  FakeAgent b = Connect(4);
  std::vector<Lease> leases = b.sender->Leases();
  ASSERT_EQ(leases.size(), 1u) << "the watch again; the snapshot waits for its subscription";
  ASSERT_TRUE(leases[0].shard().watch());
  ASSERT_TRUE(Report(b, leases[0], Subscribed(1)).ok());
  std::vector<Lease> snapshot = b.sender->Leases();
  ASSERT_EQ(snapshot.size(), 1u);
  EXPECT_EQ(snapshot[0].resume().pass(), 0u) << "the interrupted snapshot resumes first";
  ASSERT_TRUE(Finish(b, snapshot[0]).ok());
  std::vector<Lease> rescan = b.sender->Leases();
  ASSERT_EQ(rescan.size(), 2u) << "then the node is rescanned: forward and reverse";
  for (const Lease& lease : rescan) EXPECT_EQ(lease.resume().pass(), 1u);
  EXPECT_NE(State(job), ferry::v1::JOB_STATE_LIVE);
  FinishAllBut(b, rescan);
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_LIVE);
}

TEST_F(LiveSchedulerTest, ARestartedControllerRescansALiveJob) {
  std::string job = SubmitAndPlan(1);
  {
    FakeAgent agent = Connect(4);
    GoLive(job, agent);
  }
  Reopen();
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_LIVE);
  FakeAgent agent = Connect(4);
  std::vector<Lease> leases = agent.sender->Leases();
  ASSERT_EQ(leases.size(), 1u);
  ASSERT_TRUE(Report(agent, leases[0], Subscribed(1)).ok());
  auto shown = scheduler_->GetJob(job, false);
  EXPECT_FALSE(shown->live().in_sync());
  EXPECT_EQ(agent.sender->Leases().size(), 2u) << "a rescan, not a silent skip";
}

TEST_F(LiveSchedulerTest, CutoverConvergesAndSubmitsTheVerification) {
  std::string job = SubmitAndPlan(1);
  FakeAgent agent = Connect(4);
  const Lease watch = GoLive(job, agent);
  Controls(agent);
  ferry::v1::CutoverJobRequest request;
  request.set_job_id(job);
  auto cut = scheduler_->CutoverJob(request);
  ASSERT_TRUE(cut.ok()) << cut.status();
  EXPECT_EQ(cut->state(), ferry::v1::JOB_STATE_CUTOVER);
  std::vector<ControllerMessage::LiveControl> controls = Controls(agent);
  ASSERT_EQ(controls.size(), 1u);
  EXPECT_EQ(controls[0].cutover_seq(), 1u);
  EXPECT_TRUE(controls[0].apply());

  LiveStatus live = Subscribed(1);
  live.set_applying(true);
  live.set_dirty_keys(3);  // Not drained yet.
  live.set_cutover_seq(1);
  ASSERT_TRUE(Report(agent, watch, live).ok());
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_CUTOVER);
  live.set_dirty_keys(0);
  ASSERT_TRUE(Report(agent, watch, live).ok());
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_CUTOVER_READY);
  EXPECT_EQ(agent.sender->Take(ControllerMessage::kRevoke).size(), 1u);
  auto shown = scheduler_->GetJob(job, false);
  ASSERT_TRUE(shown.ok());
  const std::string verify = shown->live().verify_job_id();
  ASSERT_FALSE(verify.empty());
  auto verify_job = scheduler_->GetJob(verify, false);
  ASSERT_TRUE(verify_job.ok());
  EXPECT_EQ(verify_job->spec().kind(), ferry::v1::JOB_KIND_VERIFY);
  EXPECT_FALSE(verify_job->spec().live());
  EXPECT_EQ(verify_job->spec().verify_mode(), ferry::v1::VERIFY_MODE_QUICK);
  EXPECT_EQ(scheduler_->SpecForPlanning(verify)->source().password(), "source-pass-123");
  Reopen();
  EXPECT_EQ(scheduler_->GetJob(job, false)->live().verify_job_id(), verify) << "kept in the store";
}

TEST_F(LiveSchedulerTest, CutoverGivesUpWhileWritesGoOn) {
  std::string job = SubmitAndPlan(1);
  FakeAgent agent = Connect(4);
  const Lease watch = GoLive(job, agent);
  ferry::v1::CutoverJobRequest request;
  request.set_job_id(job);
  ASSERT_TRUE(scheduler_->CutoverJob(request).ok());
  LiveStatus live = Subscribed(1);
  live.set_applying(true);
  live.set_events_after_marker(40);
  for (uint64_t seq = 1; seq <= 10 && State(job) == ferry::v1::JOB_STATE_CUTOVER; ++seq) {
    live.set_cutover_seq(seq);
    ASSERT_TRUE(Report(agent, watch, live).ok());
  }
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_LIVE);
  auto shown = scheduler_->GetJob(job, false);
  EXPECT_THAT(shown->live().cutover_error(), HasSubstr("writes go on"));
  EXPECT_TRUE(shown->live().verify_job_id().empty());

  // And a cutover that never hears back gives up at its deadline.
  request.set_timeout_seconds(5);
  ASSERT_TRUE(scheduler_->CutoverJob(request).ok());
  now_ += absl::Seconds(6);
  Heartbeat(agent);
  scheduler_->ExpireLeases(now_);
  EXPECT_EQ(State(job), ferry::v1::JOB_STATE_LIVE);
  EXPECT_THAT(scheduler_->GetJob(job, false)->live().cutover_error(), HasSubstr("in time"));
}

TEST_F(LiveSchedulerTest, CutoverOfAJobNotLiveIsRefused) {
  std::string job = SubmitAndPlan(1);
  ferry::v1::CutoverJobRequest request;
  request.set_job_id(job);
  EXPECT_EQ(scheduler_->CutoverJob(request).status().code(), absl::StatusCode::kFailedPrecondition);
  std::string copy = Submit();
  request.set_job_id(copy);
  auto refused = scheduler_->CutoverJob(request);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("not a live job"));
}

}  // namespace
}  // namespace ferry::server
