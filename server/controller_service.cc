#include "server/controller_service.h"

#include <grpcpp/alarm.h>

#include <chrono>
#include <deque>
#include <memory>
#include <utility>
#include <vector>

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
// Messages of one agent read and waiting for the worker before its stream stops reading (its
// later messages then wait in the agent and in HTTP/2's flow control). An agent sends about ten
// a second; a batch may hold several of them, so one commit covers more than one per agent.
constexpr int kMaxQueuedMessages = 32;

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
  AgentLink(AgentSession* session, WorkQueue* writes) : writes_(writes), session_(session) {}

  void Send(const ControllerMessage& message) override ABSL_LOCKS_EXCLUDED(mu_);
  void OnWriteDone(bool ok) ABSL_LOCKS_EXCLUDED(mu_);
  // Starts the next read unless the stream is closing.
  void ReadNext() ABSL_LOCKS_EXCLUDED(mu_);
  // A message was read and queued for the worker: reads the next one at once, unless
  // kMaxQueuedMessages wait already.
  void OnQueued() ABSL_LOCKS_EXCLUDED(mu_);
  // A queued message was handled: reading resumes if it waited for that.
  void OnHandled() ABSL_LOCKS_EXCLUDED(mu_);
  // Finishes the call with `status` once the queued writes are out.
  void Close(const absl::Status& status) ABSL_LOCKS_EXCLUDED(mu_);
  // The reactor is gone (OnDone): nothing more is sent or read.
  void Detach() ABSL_LOCKS_EXCLUDED(mu_);

  // Set and read on the worker only.
  std::string agent_id;

 private:
  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // On `writes_`: starts the write of the queue's front (Send found no write in flight).
  void StartFirstWrite() ABSL_LOCKS_EXCLUDED(mu_);

  WorkQueue* const writes_;
  absl::Mutex mu_;
  AgentSession* session_ ABSL_GUARDED_BY(mu_);
  std::deque<ControllerMessage> queue_ ABSL_GUARDED_BY(mu_);  // front() is being written.
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_status_ ABSL_GUARDED_BY(mu_);
  int queued_ ABSL_GUARDED_BY(mu_) = 0;             // Read, not handled yet.
  bool read_waiting_ ABSL_GUARDED_BY(mu_) = false;  // No read in flight: too many queued.
};

}  // namespace

// Agent messages waiting for the worker, which takes all of them at once and hands those of
// registered agents to the Scheduler as one batch: one store commit for all their checkpoints.
// Each agent's messages stay in the order read (up to kMaxQueuedMessages of them wait).
// Thread-safe; Drain() runs on the worker.
class AgentInbox final : public std::enable_shared_from_this<AgentInbox> {
 public:
  struct Item {
    std::shared_ptr<AgentLink> link;
    std::string peer;
    AgentMessage message;
  };
  AgentInbox(Scheduler* scheduler, WorkQueue* worker) : scheduler_(scheduler), worker_(worker) {}

  void Push(Item item) ABSL_LOCKS_EXCLUDED(mu_);
  // The scheduler's session teardown, in order with the messages pushed before.
  void PostDisconnect(std::shared_ptr<AgentLink> link);

 private:
  void Drain() ABSL_LOCKS_EXCLUDED(mu_);
  void Register(const Item& item);

  Scheduler* const scheduler_;
  WorkQueue* const worker_;
  absl::Mutex mu_;
  std::vector<Item> items_ ABSL_GUARDED_BY(mu_);
  bool posted_ ABSL_GUARDED_BY(mu_) = false;  // A Drain() is queued on the worker.
};

namespace {

// Connect: the reactor of one agent's stream. Messages are handled on the worker, in order.
class AgentSession final : public grpc::ServerBidiReactor<AgentMessage, ControllerMessage> {
 public:
  AgentSession(std::shared_ptr<AgentInbox> inbox, WorkQueue* writes, std::string peer,
               const absl::Status& auth)
      : inbox_(std::move(inbox)),
        peer_(std::move(peer)),
        link_(std::make_shared<AgentLink>(this, writes)) {
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
    inbox_->Push({link_, peer_, std::move(in_)});
    link_->OnQueued();
  }

  void OnWriteDone(bool ok) override { link_->OnWriteDone(ok); }

  void OnDone() override {
    link_->Detach();
    inbox_->PostDisconnect(link_);
    delete this;
  }

  // The buffer of the read in flight.
  AgentMessage in_;

 private:
  const std::shared_ptr<AgentInbox> inbox_;
  const std::string peer_;
  const std::shared_ptr<AgentLink> link_;
};

void AgentLink::Send(const ControllerMessage& message) {
  absl::MutexLock lock(&mu_);
  if (session_ == nullptr || closing_) return;
  queue_.push_back(message);  // References to other elements stay valid.
  if (!writing_) {
    writing_ = true;
    // gRPC sends on the thread that starts the write: not the Scheduler's caller (the worker).
    writes_->Post([self = shared_from_this()] { self->StartFirstWrite(); });
  }
}

void AgentLink::StartFirstWrite() {
  absl::MutexLock lock(&mu_);
  if (session_ == nullptr || queue_.empty()) return;  // Detached: the call is over.
  session_->StartWrite(&queue_.front());
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

void AgentLink::OnQueued() {
  absl::MutexLock lock(&mu_);
  if (++queued_ >= kMaxQueuedMessages) {
    read_waiting_ = true;
    return;
  }
  if (session_ == nullptr || closing_) return;
  session_->StartRead(&session_->in_);  // Its buffer was moved into the queue.
}

void AgentLink::OnHandled() {
  absl::MutexLock lock(&mu_);
  --queued_;
  if (!read_waiting_) return;
  read_waiting_ = false;
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

void AgentInbox::Push(Item item) {
  absl::MutexLock lock(&mu_);
  items_.push_back(std::move(item));
  if (posted_) return;
  posted_ = true;
  worker_->Post([self = shared_from_this()] { self->Drain(); });
}

void AgentInbox::PostDisconnect(std::shared_ptr<AgentLink> link) {
  // Behind any Drain() already queued, which holds every message the stream delivered.
  worker_->Post([scheduler = scheduler_, link = std::move(link)]() {
    if (!link->agent_id.empty()) scheduler->DisconnectAgent(link->agent_id);
  });
}

void AgentInbox::Register(const Item& item) {
  AgentLink& link = *item.link;
  const AgentMessage& message = item.message;
  if (!message.has_register_agent() || message.register_agent().slots() < 1) {
    link.Close(
        absl::InvalidArgumentError("the first message must be register_agent with slots >= 1"));
    return;
  }
  link.agent_id = scheduler_->RegisterAgent(message.register_agent().name(),
                                            message.register_agent().slots(), item.peer, item.link);
  link.OnHandled();
}

void AgentInbox::Drain() {
  std::vector<Item> items;
  {
    absl::MutexLock lock(&mu_);
    items.swap(items_);
    posted_ = false;
  }
  Scheduler::AgentBatch batch;
  std::vector<AgentLink*> links;
  for (const Item& item : items) {
    if (item.link->agent_id.empty()) {
      Register(item);
      continue;
    }
    batch.emplace_back(item.link->agent_id, &item.message);
    links.push_back(item.link.get());
  }
  if (batch.empty()) return;
  const std::vector<absl::Status> statuses = scheduler_->HandleAgentMessages(batch);
  for (size_t i = 0; i < links.size(); ++i) {
    if (statuses[i].code() == absl::StatusCode::kNotFound) {
      links[i]->Close(statuses[i]);
      continue;
    }
    if (!statuses[i].ok()) FERRY_LOG(Warning) << links[i]->agent_id << ": " << statuses[i];
    links[i]->OnHandled();
  }
}

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

AgentHubServiceImpl::AgentHubServiceImpl(Scheduler* scheduler, WorkQueue* worker, WorkQueue* writes,
                                         std::string token)
    : inbox_(std::make_shared<AgentInbox>(scheduler, worker)),
      writes_(writes),
      token_(std::move(token)) {}

grpc::ServerBidiReactor<AgentMessage, ControllerMessage>* AgentHubServiceImpl::Connect(
    grpc::CallbackServerContext* context) {
  return new AgentSession(inbox_, writes_, context->peer(),
                          rpc::CheckBearerToken(*context, token_));
}

}  // namespace ferry::server
