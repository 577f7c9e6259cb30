#include "server/controller.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/metrics/http_server.h"
#include "common/metrics/process.h"
#include "common/metrics/registry.h"
#include "common/rpc/address.h"
#include "common/rpc/credentials.h"
#include "ferry/v1/ferry.pb.h"
#include "server/controller_service.h"
#include "server/job_spec.h"
#include "server/job_store.h"
#include "server/metrics.h"
#include "server/scheduler.h"
#include "server/work_queue.h"

namespace ferry::server {
namespace {

constexpr int kApiThreads = 2;
constexpr int kMaxMessageBytes = 64 << 20;  // Reports may carry many failed key names.
constexpr absl::Duration kShutdownGrace = absl::Seconds(3);
constexpr absl::Duration kMaxExpiryPeriod = absl::Seconds(1);

absl::Status CheckSecurity(const ControllerOptions& options) {
  if (options.listen.empty() || rpc::IsLoopbackAddress(options.listen)) return absl::OkStatus();
  const bool tls = !options.tls_cert.empty() && !options.tls_key.empty();
  if (tls && !options.token.empty()) return absl::OkStatus();
  if (!options.insecure) {
    return absl::FailedPreconditionError(absl::StrCat(
        "listening on ", options.listen,
        ", which is not a loopback address, requires TLS (--tls-cert, --tls-key) and a token "
        "(--token-file); --insecure allows it without"));
  }
  FERRY_LOG(Warning) << "listening on " << options.listen << " without "
                     << (tls                     ? "a token"
                         : options.token.empty() ? "TLS or a token"
                                                 : "TLS")
                     << " (--insecure): anyone who can reach this port controls the migrations";
  return absl::OkStatus();
}

}  // namespace

Controller::Controller(ControllerOptions options, Planner* planner)
    : options_(std::move(options)), planner_(planner) {}

absl::StatusOr<std::unique_ptr<Controller>> Controller::Start(ControllerOptions options,
                                                              Planner* planner) {
  FERRY_RETURN_IF_ERROR(CheckSecurity(options));
  std::unique_ptr<Controller> controller(new Controller(std::move(options), planner));
  absl::Status status = controller->Init();
  if (!status.ok()) {
    controller->Shutdown();
    return status;
  }
  return controller;
}

absl::Status Controller::Init() {
  FERRY_ASSIGN_OR_RETURN(store_, JobStore::Open(options_.state_path));
  SchedulerOptions scheduler_options;
  scheduler_options.heartbeat_interval = options_.heartbeat_interval;
  scheduler_options.lease_timeout = options_.lease_timeout;
  metrics_ = std::make_unique<metrics::Registry>();
  scheduler_options.metrics = metrics_.get();
  FERRY_ASSIGN_OR_RETURN(scheduler_, Scheduler::Create(store_.get(), scheduler_options));
  AddControllerCollector(*metrics_, scheduler_.get());
  metrics::AddProcessCollector(*metrics_);
  if (!options_.metrics_listen.empty()) {
    metrics::MetricsServerOptions metrics_options;
    metrics_options.listen = options_.metrics_listen;
    metrics_options.tls_cert = options_.tls_cert;
    metrics_options.tls_key = options_.tls_key;
    metrics_options.insecure = options_.insecure;
    FERRY_ASSIGN_OR_RETURN(metrics_server_,
                           metrics::MetricsServer::Start(metrics_options, metrics_.get()));
  }

  api_pool_ = std::make_unique<WorkQueue>(kApiThreads, "api");
  agent_worker_ = std::make_unique<WorkQueue>(1, "agents");
  agent_writes_ = std::make_unique<WorkQueue>(1, "agent-writes");
  planning_ = std::make_unique<WorkQueue>(1, "planning");
  controller_service_ = std::make_unique<ControllerServiceImpl>(
      scheduler_.get(), api_pool_.get(), options_.token, [this] { PlanPending(); });
  agent_hub_service_ = std::make_unique<AgentHubServiceImpl>(scheduler_.get(), agent_worker_.get(),
                                                             agent_writes_.get(), options_.token);

  rpc::ServerSecurity security{options_.tls_cert, options_.tls_key, options_.token};
  FERRY_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials,
                         rpc::MakeServerCredentials(security));
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  if (!options_.listen.empty()) builder.AddListeningPort(options_.listen, credentials, &port_);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  // gRPC sets SO_REUSEPORT by default: a second controller on the same address would start and
  // silently take half of the connections. Binding must fail instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Pings find dead agent connections; agents may ping as often as every 10 s without being
  // told "too many pings".
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.RegisterService(controller_service_.get());
  builder.RegisterService(agent_hub_service_.get());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || (!options_.listen.empty() && port_ == 0)) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options_.listen));
  }
  FERRY_LOG(Info) << "controller serving on "
                  << (options_.listen.empty()
                          ? "in-process channel only"
                          : absl::StrCat(options_.listen, " (port ", port_, ")"))
                  << (options_.tls_cert.empty() ? "" : " with TLS")
                  << (options_.token.empty() ? "" : ", token required") << "; state in "
                  << options_.state_path;
  timer_thread_ = std::thread([this] { TimerLoop(); });
  PlanPending();
  return absl::OkStatus();
}

int Controller::metrics_port() const {
  return metrics_server_ == nullptr ? 0 : metrics_server_->port();
}

Controller::~Controller() {
  Shutdown();
  Wait();
}

std::shared_ptr<grpc::Channel> Controller::InProcessChannel() {
  grpc::ChannelArguments args;
  if (options_.token.empty()) return server_->InProcessChannel(args);
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> factories;
  factories.push_back(rpc::BearerTokenInterceptorFactory(options_.token));
  return server_->experimental().InProcessChannelWithInterceptors(args, std::move(factories));
}

void Controller::PlanPending() {
  for (const std::string& job_id : scheduler_->JobsToPlan()) {
    {
      absl::MutexLock lock(&mu_);
      if (shutting_down_ || !planning_queued_.insert(job_id).second) continue;
    }
    planning_->Post([this, job_id] { PlanJob(job_id); });
  }
}

void Controller::PlanJob(const std::string& job_id) {
  bool skip;
  {
    absl::MutexLock lock(&mu_);
    skip = shutting_down_;  // Planned again after the restart.
  }
  // Not found, or cancelled or paused while it waited: nothing to plan.
  absl::StatusOr<ferry::v1::JobSpec> spec = scheduler_->SpecForPlanning(job_id);
  if (skip || !spec.ok()) {
    EndPlanning(job_id);
    return;
  }
  FERRY_LOG_FIELDS(Info, LogJob(job_id)) << "planning job " << job_id;
  const absl::Time start = absl::Now();
  absl::StatusOr<PlanResult> plan = planner_->Plan(*spec);
  std::string context;
  if (!plan.ok() && ScheduleRetry(job_id, *spec, plan.status(), start, &context)) return;
  absl::Status status = plan.ok() ? scheduler_->SetPlan(job_id, *plan)
                                  : scheduler_->FailPlanning(job_id, plan.status(), context);
  if (!plan.ok()) {
    FERRY_LOG_FIELDS(Warning, LogJob(job_id))
        << "job " << job_id << ": planning failed" << (context.empty() ? "" : " ") << context;
  }
  if (!status.ok()) FERRY_LOG(Error) << "job " << job_id << ": " << status;
  EndPlanning(job_id);
}

bool Controller::ScheduleRetry(const std::string& job_id, const ferry::v1::JobSpec& spec,
                               const absl::Status& error, absl::Time start, std::string* context) {
  const absl::Time now = absl::Now();
  std::string reason;
  {
    absl::MutexLock lock(&mu_);
    const PlanRetryPolicy policy{options_.plan_retry_budget, options_.plan_retry_backoff};
    PlanRetry& retry = plan_retries_.try_emplace(job_id, policy, start).first->second;
    const std::optional<absl::Duration> wait = retry.OnFailure(error, now, random_);
    if (!wait.has_value() || shutting_down_) {
      *context = retry.GiveUpContext(now);
      return wait.has_value();  // Shutting down: planned again after the restart.
    }
    reason = retry.WaitingText(error, *wait, now);
    retry.set_due(now + *wait);
    retries_changed_ = true;
  }
  // Shown before the retry can run: a fast retry that plans clears it again.
  if (absl::Status status = scheduler_->SetPlanningRetry(job_id, reason); !status.ok()) {
    FERRY_LOG(Error) << "job " << job_id << ": " << status;
  }
  FERRY_LOG_FIELDS(Warning, LogJob(job_id))
      << "job " << job_id << ": " << ScrubSecrets(reason, spec);
  return true;
}

void Controller::EndPlanning(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  planning_queued_.erase(job_id);
  plan_retries_.erase(job_id);
}

void Controller::TimerLoop() {
  const absl::Duration period = std::min(options_.lease_timeout / 4, kMaxExpiryPeriod);
  absl::Time next_expiry = absl::Now() + period;
  while (WaitForTimers(next_expiry)) {
    const absl::Time now = absl::Now();
    for (const std::string& job_id : TakeDueRetries(now)) {
      planning_->Post([this, job_id] { PlanJob(job_id); });
    }
    if (now < next_expiry) continue;
    scheduler_->ExpireLeases(now);
    PlanPending();  // Jobs the scheduler submits itself (a cutover's verification).
    next_expiry = now + period;
  }
}

bool Controller::WaitForTimers(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  for (const auto& [job_id, retry] : plan_retries_) {
    if (retry.due().has_value()) deadline = std::min(deadline, *retry.due());
  }
  retries_changed_ = false;
  mu_.AwaitWithDeadline(absl::Condition(
                            +[](Controller* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->mu_) {
                              return c->shutting_down_ || c->retries_changed_;
                            },
                            this),
                        deadline);
  return !shutting_down_;
}

std::vector<std::string> Controller::TakeDueRetries(absl::Time now) {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> due;
  for (auto& [job_id, retry] : plan_retries_) {
    if (!retry.due().has_value() || *retry.due() > now) continue;
    retry.set_due(std::nullopt);
    due.push_back(job_id);
  }
  return due;
}

void Controller::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) return;
    shutting_down_ = true;
  }
  FERRY_LOG(Info) << "controller shutting down";
  if (metrics_server_ != nullptr) metrics_server_->Stop();
  if (timer_thread_.joinable()) timer_thread_.join();  // Woken by shutting_down_.
  if (server_ != nullptr) {
    if (auto* health = server_->GetHealthCheckService()) health->Shutdown();
    // Agent streams and watches are cancelled after the grace period; unary calls finish on the
    // pools, which are still running.
    server_->Shutdown(absl::ToChronoTime(absl::Now() + kShutdownGrace));
  }
  if (api_pool_ != nullptr) api_pool_->Stop();
  if (agent_worker_ != nullptr) agent_worker_->Stop();
  if (agent_writes_ != nullptr) agent_writes_->Stop();  // After the worker's last sends.
  if (planning_ != nullptr) planning_->Stop();
  if (server_ != nullptr) server_->Wait();
  shutdown_done_.Notify();
}

void Controller::Wait() { shutdown_done_.WaitForNotification(); }

}  // namespace ferry::server
