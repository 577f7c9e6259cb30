#include "server/controller_service.h"

#include <grpcpp/alarm.h>

#include <chrono>
#include <deque>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/rpc/credentials.h"
#include "common/rpc/status.h"
#include "server/job_spec.h"
#include "server/scheduler_internal.h"

namespace ferry::server {
namespace {

using ferry::v1::AgentMessage;
using ferry::v1::ControllerMessage;

constexpr int kDefaultWatchIntervalMs = 1000;
constexpr int kMinWatchIntervalMs = 20;

// WatchJob: writes the job now, then every interval, and finishes after the write that shows
// the job ended. At most one write or one alarm is pending at a time.
class WatchJobReactor final : public grpc::ServerWriteReactor<ferry::v1::Job> {
 public:
  WatchJobReactor(Scheduler* scheduler, const ferry::v1::WatchJobRequest& request,
                  const absl::Status& auth)
      : scheduler_(scheduler),
        job_id_(request.job_id()),
        include_shards_(request.include_shards()),
        interval_ms_(request.interval_ms() > 0
                         ? std::max(request.interval_ms(), kMinWatchIntervalMs)
                         : kDefaultWatchIntervalMs) {
    if (!auth.ok()) {
      FinishOnce(auth);
      return;
    }
    WriteNext();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) return FinishOnce(absl::CancelledError("watch stream closed"));
    if (last_) return FinishOnce(absl::OkStatus());
    absl::MutexLock lock(&mu_);
    if (cancelled_) return FinishOnceLocked(absl::CancelledError("watch cancelled"));
    alarm_pending_ = true;
    alarm_.Set(std::chrono::system_clock::now() + std::chrono::milliseconds(interval_ms_),
               [this](bool fired) { OnAlarm(fired); });
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    if (alarm_pending_) alarm_.Cancel();  // OnAlarm(false) finishes the call.
  }

  void OnDone() override { delete this; }

 private:
  void OnAlarm(bool fired) {
    {
      absl::MutexLock lock(&mu_);
      alarm_pending_ = false;
      if (!fired || cancelled_) return FinishOnceLocked(absl::CancelledError("watch cancelled"));
    }
    WriteNext();
  }

  void WriteNext() {
    absl::StatusOr<ferry::v1::Job> job = scheduler_->GetJob(job_id_, include_shards_);
    if (!job.ok()) return FinishOnce(job.status());
    last_ = IsEnded(job->state());
    job_ = *std::move(job);
    StartWrite(&job_);
  }

  void FinishOnce(const absl::Status& status) {
    absl::MutexLock lock(&mu_);
    FinishOnceLocked(status);
  }
  void FinishOnceLocked(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    Finish(rpc::ToGrpcStatus(status));
  }

  Scheduler* const scheduler_;
  const std::string job_id_;
  const bool include_shards_;
  const int interval_ms_;
  ferry::v1::Job job_;  // The message being written.
  bool last_ = false;   // job_ shows the job ended.
  grpc::Alarm alarm_;
  absl::Mutex mu_;
  bool alarm_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

class AgentSession;

// The state of one Connect stream that outlives its reactor: the Scheduler and queued worker
// tasks hold it. Owns the write queue (one write in flight, the next chained from OnWriteDone)
// and starts reads (one in flight, the next after the worker handled the previous message).
class AgentLink final : public AgentSender, public std::enable_shared_from_this<AgentLink> {
 public:
  explicit AgentLink(AgentSession* session) : session_(session) {}

  void Send(const ControllerMessage& message) override ABSL_LOCKS_EXCLUDED(mu_);
  void OnWriteDone(bool ok) ABSL_LOCKS_EXCLUDED(mu_);
  // Starts the next read unless the stream is closing.
  void ReadNext() ABSL_LOCKS_EXCLUDED(mu_);
  // Finishes the call with `status` once the queued writes are out.
  void Close(const absl::Status& status) ABSL_LOCKS_EXCLUDED(mu_);
  // The reactor is gone (OnDone): nothing more is sent or read.
  void Detach() ABSL_LOCKS_EXCLUDED(mu_);

  // Set and read on the worker only.
  std::string agent_id;

 private:
  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  AgentSession* session_ ABSL_GUARDED_BY(mu_);
  std::deque<ControllerMessage> queue_ ABSL_GUARDED_BY(mu_);  // front() is being written.
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_status_ ABSL_GUARDED_BY(mu_);
};

// Connect: the reactor of one agent's stream. Messages are handled on the worker, in order.
class AgentSession final : public grpc::ServerBidiReactor<AgentMessage, ControllerMessage> {
 public:
  AgentSession(Scheduler* scheduler, WorkQueue* worker, std::string peer, const absl::Status& auth)
      : scheduler_(scheduler),
        worker_(worker),
        peer_(std::move(peer)),
        link_(std::make_shared<AgentLink>(this)) {
    if (!auth.ok()) {
      FERRY_LOG(Warning) << "agent stream from " << peer_ << " refused: " << auth;
      link_->Close(auth);
      return;
    }
    link_->ReadNext();
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      link_->Close(absl::OkStatus());  // The agent closed its side or the stream broke.
      return;
    }
    worker_->Post([scheduler = scheduler_, link = link_, peer = peer_, message = std::move(in_)]() {
      Handle(scheduler, link, peer, message);
    });
  }

  void OnWriteDone(bool ok) override { link_->OnWriteDone(ok); }

  void OnDone() override {
    link_->Detach();
    worker_->Post([scheduler = scheduler_, link = link_]() {
      if (!link->agent_id.empty()) scheduler->DisconnectAgent(link->agent_id);
    });
    delete this;
  }

  // The buffer of the read in flight.
  AgentMessage in_;

 private:
  // On the worker.
  static void Handle(Scheduler* scheduler, const std::shared_ptr<AgentLink>& link_ptr,
                     const std::string& peer, const AgentMessage& message) {
    AgentLink& link = *link_ptr;
    if (link.agent_id.empty()) {
      if (!message.has_register_agent() || message.register_agent().slots() < 1) {
        link.Close(
            absl::InvalidArgumentError("the first message must be register_agent with slots >= 1"));
        return;
      }
      link.agent_id = scheduler->RegisterAgent(message.register_agent().name(),
                                               message.register_agent().slots(), peer, link_ptr);
    } else {
      absl::Status status = scheduler->HandleAgentMessage(link.agent_id, message);
      if (status.code() == absl::StatusCode::kNotFound) {
        link.Close(status);
        return;
      }
      if (!status.ok()) FERRY_LOG(Warning) << link.agent_id << ": " << status;
    }
    link.ReadNext();
  }

  Scheduler* const scheduler_;
  WorkQueue* const worker_;
  const std::string peer_;
  const std::shared_ptr<AgentLink> link_;
};

void AgentLink::Send(const ControllerMessage& message) {
  absl::MutexLock lock(&mu_);
  if (session_ == nullptr || closing_) return;
  queue_.push_back(message);  // References to other elements stay valid.
  if (!writing_) {
    writing_ = true;
    session_->StartWrite(&queue_.front());
  }
}

void AgentLink::OnWriteDone(bool ok) {
  absl::MutexLock lock(&mu_);
  queue_.pop_front();
  if (!ok) {
    // The stream is broken: nothing more can be written.
    queue_.clear();
    writing_ = false;
    closing_ = true;
    FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "agent stream broken"));
    return;
  }
  if (!queue_.empty()) {
    session_->StartWrite(&queue_.front());
    return;
  }
  writing_ = false;
  if (closing_) FinishLocked(final_status_);
}

void AgentLink::ReadNext() {
  absl::MutexLock lock(&mu_);
  if (session_ == nullptr || closing_) return;
  session_->StartRead(&session_->in_);
}

void AgentLink::Close(const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  if (closing_) return;
  closing_ = true;
  final_status_ = rpc::ToGrpcStatus(status);
  if (!writing_) FinishLocked(final_status_);
}

void AgentLink::Detach() {
  absl::MutexLock lock(&mu_);
  session_ = nullptr;
  queue_.clear();
}

void AgentLink::FinishLocked(const grpc::Status& status) {
  if (finished_ || session_ == nullptr) return;
  finished_ = true;
  session_->Finish(status);
}

}  // namespace

ControllerServiceImpl::ControllerServiceImpl(Scheduler* scheduler, WorkQueue* pool,
                                             std::string token, std::function<void()> plan_pending)
    : scheduler_(scheduler),
      pool_(pool),
      token_(std::move(token)),
      plan_pending_(std::move(plan_pending)) {}

grpc::ServerUnaryReactor* ControllerServiceImpl::Respond(grpc::CallbackServerContext* context,
                                                         std::function<absl::Status()> handler) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status auth = rpc::CheckBearerToken(*context, token_);
  if (!auth.ok()) {
    reactor->Finish(rpc::ToGrpcStatus(auth));
    return reactor;
  }
  pool_->Post(
      [reactor, handler = std::move(handler)]() { reactor->Finish(rpc::ToGrpcStatus(handler())); });
  return reactor;
}

grpc::ServerUnaryReactor* ControllerServiceImpl::SubmitJob(
    grpc::CallbackServerContext* context, const ferry::v1::SubmitJobRequest* request,
    ferry::v1::SubmitJobResponse* response) {
  return Respond(context, [this, request, response]() -> absl::Status {
    ferry::v1::JobSpec spec = request->spec();
    FERRY_RETURN_IF_ERROR(NormalizeJobSpec(&spec));
    FERRY_ASSIGN_OR_RETURN(std::string id, scheduler_->SubmitJob(spec));
    response->set_job_id(id);
    plan_pending_();
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ControllerServiceImpl::GetJob(grpc::CallbackServerContext* context,
                                                        const ferry::v1::GetJobRequest* request,
                                                        ferry::v1::Job* response) {
  return Respond(context, [this, request, response]() -> absl::Status {
    FERRY_ASSIGN_OR_RETURN(*response,
                           scheduler_->GetJob(request->job_id(), request->include_shards()));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ControllerServiceImpl::ListJobs(
    grpc::CallbackServerContext* context, const ferry::v1::ListJobsRequest* /*request*/,
    ferry::v1::ListJobsResponse* response) {
  return Respond(context, [this, response]() -> absl::Status {
    for (ferry::v1::Job& job : scheduler_->ListJobs()) *response->add_jobs() = std::move(job);
    return absl::OkStatus();
  });
}

grpc::ServerWriteReactor<ferry::v1::Job>* ControllerServiceImpl::WatchJob(
    grpc::CallbackServerContext* context, const ferry::v1::WatchJobRequest* request) {
  return new WatchJobReactor(scheduler_, *request, rpc::CheckBearerToken(*context, token_));
}

grpc::ServerUnaryReactor* ControllerServiceImpl::CancelJob(
    grpc::CallbackServerContext* context, const ferry::v1::CancelJobRequest* request,
    ferry::v1::Job* response) {
  return Respond(context, [this, request, response]() -> absl::Status {
    FERRY_ASSIGN_OR_RETURN(*response, scheduler_->CancelJob(request->job_id()));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ControllerServiceImpl::CutoverJob(
    grpc::CallbackServerContext* context, const ferry::v1::CutoverJobRequest* request,
    ferry::v1::Job* response) {
  return Respond(context, [this, request, response]() -> absl::Status {
    FERRY_ASSIGN_OR_RETURN(*response, scheduler_->CutoverJob(*request));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ControllerServiceImpl::PauseJob(grpc::CallbackServerContext* context,
                                                          const ferry::v1::PauseJobRequest* request,
                                                          ferry::v1::Job* response) {
  return Respond(context, [this, request, response]() -> absl::Status {
    FERRY_ASSIGN_OR_RETURN(*response, scheduler_->PauseJob(request->job_id()));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ControllerServiceImpl::ResumeJob(
    grpc::CallbackServerContext* context, const ferry::v1::ResumeJobRequest* request,
    ferry::v1::Job* response) {
  return Respond(context, [this, request, response]() -> absl::Status {
    FERRY_ASSIGN_OR_RETURN(*response, scheduler_->ResumeJob(request->job_id()));
    plan_pending_();  // A job whose planning failed is planned again.
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ControllerServiceImpl::ListAgents(
    grpc::CallbackServerContext* context, const ferry::v1::ListAgentsRequest* /*request*/,
    ferry::v1::ListAgentsResponse* response) {
  return Respond(context, [this, response]() -> absl::Status {
    for (ferry::v1::AgentInfo& agent : scheduler_->ListAgents()) {
      *response->add_agents() = std::move(agent);
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ControllerServiceImpl::ListFailedKeys(
    grpc::CallbackServerContext* context, const ferry::v1::ListFailedKeysRequest* request,
    ferry::v1::ListFailedKeysResponse* response) {
  return Respond(context, [this, request, response]() -> absl::Status {
    FERRY_ASSIGN_OR_RETURN(*response, scheduler_->ListFailedKeys(*request));
    return absl::OkStatus();
  });
}

AgentHubServiceImpl::AgentHubServiceImpl(Scheduler* scheduler, WorkQueue* worker, std::string token)
    : scheduler_(scheduler), worker_(worker), token_(std::move(token)) {}

grpc::ServerBidiReactor<AgentMessage, ControllerMessage>* AgentHubServiceImpl::Connect(
    grpc::CallbackServerContext* context) {
  return new AgentSession(scheduler_, worker_, context->peer(),
                          rpc::CheckBearerToken(*context, token_));
}

}  // namespace ferry::server
