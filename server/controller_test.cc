// The controller through its gRPC API, in one process: a fake planner, fake agents on real
// Connect streams, and clients over loopback TCP and the in-process channel.

#include "server/controller.h"

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/rpc/credentials.h"
#include "common/testing/process.h"
#include "ferry/v1/ferry.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::server {
namespace {

using ferry::v1::AgentMessage;
using ferry::v1::ControllerMessage;
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

class FakePlanner : public Planner {
 public:
  absl::StatusOr<PlanResult> Plan(const ferry::v1::JobSpec& spec) override {
    // Port 3: down for the first two attempts (the password in the text is scrubbed); port 4:
    // never up.
    if (absl::StrContains(spec.source().uri(), ":3") && unavailable_left.fetch_sub(1) > 0) {
      return absl::UnavailableError("source 127.0.0.1:3 src-pw-1234: connection refused");
    }
    if (absl::StrContains(spec.source().uri(), ":4")) {
      return absl::DeadlineExceededError("source 127.0.0.1:4: no reply within 5s");
    }
    if (spec.source().password() != "src-pw-1234") {
      return absl::UnauthenticatedError("wrong password");
    }
    PlanResult plan;
    for (int i = 0; i < 2; ++i) plan.shards.push_back(Shard("", 1, static_cast<uint64_t>(i)));
    plan.estimated_keys = 20;
    return plan;
  }

  std::atomic<int> unavailable_left{2};
};

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  return context;
}

// An agent on a real Connect stream, driven step by step by the test.
class FakeAgent {
 public:
  FakeAgent(const std::shared_ptr<grpc::Channel>& channel, int slots)
      : stub_(ferry::v1::AgentHub::NewStub(channel)), context_(Context()) {
    stream_ = stub_->Connect(context_.get());
    AgentMessage hello;
    hello.mutable_register_agent()->set_name("test-agent");
    hello.mutable_register_agent()->set_slots(slots);
    EXPECT_TRUE(stream_->Write(hello));
    ControllerMessage registered = Read();
    EXPECT_TRUE(registered.has_registered());
    id = registered.registered().agent_id();
  }
  ~FakeAgent() { Kill(); }

  ControllerMessage Read() {
    ControllerMessage message;
    EXPECT_TRUE(stream_->Read(&message));
    return message;
  }
  // The next message of `kind`, skipping others (rate updates, for instance).
  ControllerMessage ReadUntil(ControllerMessage::MsgCase kind) {
    while (true) {
      ControllerMessage message;
      if (!stream_->Read(&message)) {
        ADD_FAILURE() << "stream ended";
        return message;
      }
      if (message.msg_case() == kind) return message;
    }
  }
  void Write(const AgentMessage& message) { EXPECT_TRUE(stream_->Write(message)); }
  void Finish(const ControllerMessage::Lease& lease) {
    AgentMessage message;
    message.mutable_finished()->set_lease_id(lease.lease_id());
    message.mutable_finished()->set_epoch(lease.epoch());
    message.mutable_finished()->mutable_checkpoint()->set_done(true);
    message.mutable_finished()->mutable_checkpoint()->mutable_counters()->set_scanned(10);
    Write(message);
  }
  // Breaks the stream as a crashed agent would.
  void Kill() {
    if (context_ != nullptr) context_->TryCancel();
  }

  std::string id;

 private:
  std::unique_ptr<ferry::v1::AgentHub::Stub> stub_;
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientReaderWriter<AgentMessage, ControllerMessage>> stream_;
};

class ControllerTest : public ::testing::Test {
 protected:
  void Start(const std::string& token = "",
             absl::Duration plan_retry_backoff = absl::Milliseconds(20),
             absl::Duration plan_retry_budget = absl::Seconds(60)) {
    ControllerOptions options;
    options.plan_retry_backoff = plan_retry_backoff;
    options.plan_retry_budget = plan_retry_budget;
    options.listen = "127.0.0.1:0";
    options.state_path = ::ferry::testing::ProcessTempDir() + "/controller_test-" +
                         std::to_string(getpid()) + "-" +
                         ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".db";
    unlink(options.state_path.c_str());
    options.token = token;
    auto controller = Controller::Start(options, &planner_);
    ASSERT_TRUE(controller.ok()) << controller.status();
    controller_ = std::move(*controller);
    ASSERT_GT(controller_->port(), 0);
  }

  std::shared_ptr<grpc::Channel> TcpChannel(const std::string& token = "") {
    rpc::ClientSecurity security;
    security.token = token;
    auto channel =
        rpc::CreateClientChannel("127.0.0.1:" + std::to_string(controller_->port()), security);
    EXPECT_TRUE(channel.ok());
    return *channel;
  }

  std::string Submit(ferry::v1::Controller::Stub& stub, int source_port = 1) {
    ferry::v1::SubmitJobRequest request;
    request.mutable_spec()->mutable_source()->set_uri(
        absl::StrCat("redis://admin:src-pw-1234@127.0.0.1:", source_port));
    request.mutable_spec()->mutable_target()->set_uri("redis://127.0.0.1:2");
    request.mutable_spec()->mutable_target()->set_password("dst-pw-5678");
    ferry::v1::SubmitJobResponse response;
    grpc::Status status = stub.SubmitJob(Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.job_id();
  }

  FakePlanner planner_;
  std::unique_ptr<Controller> controller_;
};

TEST_F(ControllerTest, JobRunsToDoneThroughAgentStreams) {
  Start();
  auto stub = ferry::v1::Controller::NewStub(TcpChannel());
  std::string job_id = Submit(*stub);
  ASSERT_FALSE(job_id.empty());

  FakeAgent agent(TcpChannel(), 2);
  ControllerMessage::Lease first = agent.ReadUntil(ControllerMessage::kLease).lease();
  ControllerMessage::Lease second = agent.ReadUntil(ControllerMessage::kLease).lease();
  EXPECT_EQ(first.source().password(), "src-pw-1234");  // Moved out of the URI.
  EXPECT_EQ(first.source().uri(), "redis://admin@127.0.0.1:1");
  EXPECT_EQ(first.target().password(), "dst-pw-5678");

  AgentMessage progress;
  progress.mutable_progress()->set_lease_id(first.lease_id());
  progress.mutable_progress()->set_epoch(first.epoch());
  progress.mutable_progress()->mutable_checkpoint()->set_cursor(5);
  agent.Write(progress);
  EXPECT_EQ(agent.ReadUntil(ControllerMessage::kAck).ack().lease_id(), first.lease_id());

  agent.Finish(first);
  agent.Finish(second);
  // WatchJob streams until the job has ended.
  ferry::v1::WatchJobRequest watch;
  watch.set_job_id(job_id);
  watch.set_interval_ms(100);
  auto context = Context();
  auto reader = stub->WatchJob(context.get(), watch);
  ferry::v1::Job job;
  int updates = 0;
  while (reader->Read(&job)) ++updates;
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_GE(updates, 1);
  EXPECT_EQ(job.state(), ferry::v1::JOB_STATE_DONE);
  EXPECT_EQ(job.progress().counters().scanned(), 20u);
  EXPECT_THAT(job.DebugString(), Not(HasSubstr("pw-")));

  ferry::v1::ListAgentsResponse agents;
  ASSERT_TRUE(stub->ListAgents(Context().get(), {}, &agents).ok());
  ASSERT_EQ(agents.agents_size(), 1);
  EXPECT_EQ(agents.agents(0).name(), "test-agent");
}

TEST_F(ControllerTest, KilledAgentStreamReturnsItsShards) {
  Start();
  auto stub = ferry::v1::Controller::NewStub(TcpChannel());
  Submit(*stub);
  auto a = std::make_unique<FakeAgent>(TcpChannel(), 1);
  ControllerMessage::Lease lease = a->ReadUntil(ControllerMessage::kLease).lease();
  a->Kill();
  FakeAgent b(TcpChannel(), 2);
  ControllerMessage::Lease x = b.ReadUntil(ControllerMessage::kLease).lease();
  ControllerMessage::Lease y = b.ReadUntil(ControllerMessage::kLease).lease();
  const ControllerMessage::Lease& again =
      x.shard().shard_index() == lease.shard().shard_index() ? x : y;
  EXPECT_EQ(again.shard().shard_index(), lease.shard().shard_index());
  EXPECT_EQ(again.epoch(), lease.epoch() + 1);
}

TEST_F(ControllerTest, PauseRevokesTheAgentsLease) {
  Start();
  auto stub = ferry::v1::Controller::NewStub(TcpChannel());
  std::string job_id = Submit(*stub);
  FakeAgent agent(TcpChannel(), 1);
  ControllerMessage::Lease lease = agent.ReadUntil(ControllerMessage::kLease).lease();
  ferry::v1::PauseJobRequest pause;
  pause.set_job_id(job_id);
  ferry::v1::Job job;
  ASSERT_TRUE(stub->PauseJob(Context().get(), pause, &job).ok());
  EXPECT_EQ(job.state(), ferry::v1::JOB_STATE_PAUSED);
  EXPECT_EQ(agent.ReadUntil(ControllerMessage::kRevoke).revoke().lease_id(), lease.lease_id());
}

TEST_F(ControllerTest, UnknownJobIsNotFound) {
  Start();
  auto stub = ferry::v1::Controller::NewStub(TcpChannel());
  ferry::v1::GetJobRequest request;
  request.set_job_id("no-such-job");
  ferry::v1::Job job;
  EXPECT_EQ(stub->GetJob(Context().get(), request, &job).error_code(), grpc::StatusCode::NOT_FOUND);
  ferry::v1::WatchJobRequest watch;
  watch.set_job_id("no-such-job");
  auto context = Context();
  auto reader = stub->WatchJob(context.get(), watch);
  EXPECT_FALSE(reader->Read(&job));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ControllerTest, InvalidSpecIsRejected) {
  Start();
  auto stub = ferry::v1::Controller::NewStub(TcpChannel());
  ferry::v1::SubmitJobRequest request;
  request.mutable_spec()->mutable_source()->set_uri("redis://127.0.0.1:1");
  ferry::v1::SubmitJobResponse response;
  EXPECT_EQ(stub->SubmitJob(Context().get(), request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ControllerTest, PlanningErrorFailsTheJob) {
  Start();
  auto stub = ferry::v1::Controller::NewStub(TcpChannel());
  ferry::v1::SubmitJobRequest request;
  request.mutable_spec()->mutable_source()->set_uri("redis://127.0.0.1:1");
  request.mutable_spec()->mutable_target()->set_uri("redis://127.0.0.1:2");
  ferry::v1::SubmitJobResponse response;
  ASSERT_TRUE(stub->SubmitJob(Context().get(), request, &response).ok());
  ferry::v1::WatchJobRequest watch;
  watch.set_job_id(response.job_id());
  auto context = Context();
  auto reader = stub->WatchJob(context.get(), watch);
  ferry::v1::Job job;
  while (reader->Read(&job)) {
  }
  EXPECT_EQ(job.state(), ferry::v1::JOB_STATE_FAILED);
  EXPECT_THAT(job.error(), HasSubstr("wrong password"));
}

// The job once `done` says so, or after `timeout`.
ferry::v1::Job WaitForJob(ferry::v1::Controller::Stub& stub, const std::string& job_id,
                          const std::function<bool(const ferry::v1::Job&)>& done,
                          absl::Duration timeout = absl::Seconds(10)) {
  ferry::v1::Job job;
  const absl::Time deadline = absl::Now() + timeout;
  do {
    ferry::v1::GetJobRequest request;
    request.set_job_id(job_id);
    EXPECT_TRUE(stub.GetJob(Context().get(), request, &job).ok());
    if (done(job)) break;
    absl::SleepFor(absl::Milliseconds(10));
  } while (absl::Now() < deadline);
  return job;
}

bool Planned(const ferry::v1::Job& job) { return job.progress().shards_total() > 0; }
bool Waits(const ferry::v1::Job& job) { return !job.planning_retry().empty(); }
bool Ended(const ferry::v1::Job& job) { return job.state() != ferry::v1::JOB_STATE_PENDING; }

TEST_F(ControllerTest, TransientPlanningErrorsAreRetriedWithoutHoldingOtherJobs) {
  // The first wait is a minute: the retries of the job from port 3 cannot have run by the
  // time the job from port 1 is planned, unless planning slept on the queue.
  Start("", absl::Minutes(1));
  auto stub = ferry::v1::Controller::NewStub(TcpChannel());
  const std::string waiting = Submit(*stub, 3);
  ferry::v1::Job job = WaitForJob(*stub, waiting, Waits);
  EXPECT_EQ(job.state(), ferry::v1::JOB_STATE_PENDING);
  EXPECT_THAT(job.planning_retry(), HasSubstr("planning attempt 1 failed: source 127.0.0.1:3"));
  EXPECT_THAT(job.planning_retry(), HasSubstr("next attempt in"));
  EXPECT_THAT(job.planning_retry(), Not(HasSubstr("src-pw-1234")));
  const std::string other = Submit(*stub, 1);
  EXPECT_TRUE(Planned(WaitForJob(*stub, other, Planned)));
  job = WaitForJob(*stub, waiting, Planned, absl::ZeroDuration());
  EXPECT_FALSE(Planned(job));
  EXPECT_THAT(job.planning_retry(), HasSubstr("planning attempt 1 failed"));
}

TEST_F(ControllerTest, RetriedPlanningSucceedsOnceTheSourceAnswers) {
  Start();
  auto stub = ferry::v1::Controller::NewStub(TcpChannel());
  const std::string job_id = Submit(*stub, 3);
  const ferry::v1::Job job = WaitForJob(*stub, job_id, Planned);
  EXPECT_TRUE(Planned(job)) << job.error();
  EXPECT_EQ(job.state(), ferry::v1::JOB_STATE_PENDING);  // Until an agent takes a shard.
  EXPECT_EQ(job.planning_retry(), "");
  EXPECT_EQ(planner_.unavailable_left.load(), -1);  // Two failures, then the plan.
}

TEST_F(ControllerTest, CancelledJobIsNotPlannedAgain) {
  Start("", absl::Seconds(1));
  auto stub = ferry::v1::Controller::NewStub(TcpChannel());
  const std::string job_id = Submit(*stub, 3);
  WaitForJob(*stub, job_id, Waits);
  ferry::v1::CancelJobRequest cancel;
  cancel.set_job_id(job_id);
  ferry::v1::Job cancelled;
  ASSERT_TRUE(stub->CancelJob(Context().get(), cancel, &cancelled).ok());
  absl::SleepFor(absl::Seconds(2));  // Past the retry's time.
  const ferry::v1::Job job = WaitForJob(*stub, job_id, Planned, absl::ZeroDuration());
  EXPECT_EQ(job.state(), ferry::v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(job.planning_retry(), "");
  EXPECT_EQ(planner_.unavailable_left.load(), 1) << "planned again after the cancel";
}

TEST_F(ControllerTest, PlanningThatNeverAnswersFailsAfterTheBudget) {
  Start("", absl::Milliseconds(20), absl::Milliseconds(300));
  auto stub = ferry::v1::Controller::NewStub(TcpChannel());
  const ferry::v1::Job job = WaitForJob(*stub, Submit(*stub, 4), Ended);
  EXPECT_EQ(job.state(), ferry::v1::JOB_STATE_FAILED);
  EXPECT_THAT(job.error(), ::testing::ContainsRegex("^planning failed after [0-9]+ attempts over "
                                                    "[0-9.]+m?s: source 127.0.0.1:4: no reply "
                                                    "within 5s$"));
  EXPECT_EQ(job.error_code(), static_cast<int>(absl::StatusCode::kDeadlineExceeded));
  EXPECT_EQ(job.planning_retry(), "");
}

TEST_F(ControllerTest, TokenIsRequiredWhenSet) {
  Start("the-token");
  ferry::v1::ListJobsResponse response;
  EXPECT_EQ(ferry::v1::Controller::NewStub(TcpChannel())
                ->ListJobs(Context().get(), {}, &response)
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ferry::v1::Controller::NewStub(TcpChannel("wrong"))
                ->ListJobs(Context().get(), {}, &response)
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(ferry::v1::Controller::NewStub(TcpChannel("the-token"))
                  ->ListJobs(Context().get(), {}, &response)
                  .ok());
  EXPECT_TRUE(ferry::v1::Controller::NewStub(controller_->InProcessChannel())
                  ->ListJobs(Context().get(), {}, &response)
                  .ok());
  // An agent without the token is refused too.
  auto stub = ferry::v1::AgentHub::NewStub(TcpChannel());
  auto context = Context();
  auto stream = stub->Connect(context.get());
  ControllerMessage message;
  EXPECT_FALSE(stream->Read(&message));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(ControllerTest, HealthServiceAnswersServing) {
  Start();
  grpc::GenericStub stub(TcpChannel());
  grpc::Slice empty_request("", 0);
  grpc::ByteBuffer request(&empty_request, 1);  // HealthCheckRequest{service: ""}
  grpc::ByteBuffer response;
  grpc::Status status;
  absl::Notification done;
  auto context = Context();
  stub.UnaryCall(context.get(), "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request,
                 &response, [&](grpc::Status s) {
                   status = s;
                   done.Notify();
                 });
  done.WaitForNotification();
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  EXPECT_EQ(bytes, std::string("\x08\x01", 2));  // HealthCheckResponse{status: SERVING}
}

TEST(ControllerStartTest, NonLoopbackNeedsTlsAndTokenOrInsecure) {
  FakePlanner planner;
  ControllerOptions options;
  options.listen = "0.0.0.0:0";
  options.state_path =
      ::ferry::testing::ProcessTempDir() + "/controller_start-" + std::to_string(getpid());
  EXPECT_EQ(Controller::Start(options, &planner).status().code(),
            absl::StatusCode::kFailedPrecondition);
  options.insecure = true;
  auto controller = Controller::Start(options, &planner);
  EXPECT_TRUE(controller.ok()) << controller.status();
}

}  // namespace
}  // namespace ferry::server
