#pragma once

// The gRPC edge of the controller: thin adapters from the generated callback services to the
// Scheduler. Handler logic returns absl::Status and is converted to grpc::Status once; blocking
// work runs on WorkQueues, never in a reaction.

#include <functional>
#include <memory>
#include <string>

#include "ferry/v1/ferry.grpc.pb.h"
#include "server/scheduler.h"
#include "server/work_queue.h"

namespace ferry::server {

// ferry.v1.Controller: jobs, for the CLI and other programs.
class ControllerServiceImpl final : public ferry::v1::Controller::CallbackService {
 public:
  // `scheduler` and `pool` outlive the service (and the server it is registered with).
  // `plan_pending` is called after a job was submitted or resumed, to plan jobs that need it.
  // `token`: the bearer token every call must carry; empty means none.
  ControllerServiceImpl(Scheduler* scheduler, WorkQueue* pool, std::string token,
                        std::function<void()> plan_pending);

  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* context,
                                      const ferry::v1::SubmitJobRequest* request,
                                      ferry::v1::SubmitJobResponse* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const ferry::v1::GetJobRequest* request,
                                   ferry::v1::Job* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const ferry::v1::ListJobsRequest* request,
                                     ferry::v1::ListJobsResponse* response) override;
  grpc::ServerWriteReactor<ferry::v1::Job>* WatchJob(
      grpc::CallbackServerContext* context, const ferry::v1::WatchJobRequest* request) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* context,
                                      const ferry::v1::CancelJobRequest* request,
                                      ferry::v1::Job* response) override;
  grpc::ServerUnaryReactor* CutoverJob(grpc::CallbackServerContext* context,
                                       const ferry::v1::CutoverJobRequest* request,
                                       ferry::v1::Job* response) override;
  grpc::ServerUnaryReactor* PauseJob(grpc::CallbackServerContext* context,
                                     const ferry::v1::PauseJobRequest* request,
                                     ferry::v1::Job* response) override;
  grpc::ServerUnaryReactor* ResumeJob(grpc::CallbackServerContext* context,
                                      const ferry::v1::ResumeJobRequest* request,
                                      ferry::v1::Job* response) override;
  grpc::ServerUnaryReactor* ListAgents(grpc::CallbackServerContext* context,
                                       const ferry::v1::ListAgentsRequest* request,
                                       ferry::v1::ListAgentsResponse* response) override;
  grpc::ServerUnaryReactor* ListFailedKeys(grpc::CallbackServerContext* context,
                                           const ferry::v1::ListFailedKeysRequest* request,
                                           ferry::v1::ListFailedKeysResponse* response) override;

 private:
  // Checks the token, then runs `handler` on the pool and finishes the call with its status.
  grpc::ServerUnaryReactor* Respond(grpc::CallbackServerContext* context,
                                    std::function<absl::Status()> handler);

  Scheduler* const scheduler_;
  WorkQueue* const pool_;
  const std::string token_;
  const std::function<void()> plan_pending_;
};

class AgentInbox;

// ferry.v1.AgentHub: one Connect stream per agent. Messages are handled on the worker in
// batches: one store commit for every message that arrived while the previous batch ran.
class AgentHubServiceImpl final : public ferry::v1::AgentHub::CallbackService {
 public:
  // `worker` must run one task at a time, in order: it handles every agent message. `writes`
  // starts each stream's writes, so that gRPC's sending does not run on the worker. Both must
  // outlive the service and every stream, and be stopped before the service is destroyed.
  AgentHubServiceImpl(Scheduler* scheduler, WorkQueue* worker, WorkQueue* writes,
                      std::string token);

  grpc::ServerBidiReactor<ferry::v1::AgentMessage, ferry::v1::ControllerMessage>* Connect(
      grpc::CallbackServerContext* context) override;

 private:
  const std::shared_ptr<AgentInbox> inbox_;  // Messages waiting for the worker.
  WorkQueue* const writes_;
  const std::string token_;
};

}  // namespace ferry::server
