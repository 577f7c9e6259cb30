#include "cli/client.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/rpc/credentials.h"
#include "common/rpc/status.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/grpcpp.h"
#include "proto/wire/endpoint.h"
#include "proto/wire/job_defaults.h"
#include "proto/wire/job_state.h"

namespace ferry::cli {

using ferry::v1::Job;
using ferry::v1::JobState;

std::vector<FlagSpec> ClientFlags() {
  return {
      {"controller", "ADDR", "controller address (default $FERRY_CONTROLLER, else 127.0.0.1:7420)"},
      {"token-file", "FILE", "file with the controller's bearer token (default $FERRY_TOKEN)"},
      {"tls-ca", "FILE", "talk TLS to the controller, trusting this PEM CA bundle"},
      {"timeout", "SECONDS", "deadline of each call (default 15)"},
  };
}

absl::StatusOr<ClientOptions> ClientOptionsFromArgs(const Args& args) {
  ClientOptions options;
  const char* env_address = std::getenv("FERRY_CONTROLLER");
  options.address =
      args.Get("controller", env_address && *env_address ? env_address : "127.0.0.1:7420");
  if (args.Has("token-file")) {
    FERRY_ASSIGN_OR_RETURN(options.token, rpc::ReadTokenFile(args.Get("token-file")));
  } else if (const char* token = std::getenv("FERRY_TOKEN"); token != nullptr) {
    options.token = token;
  }
  if (args.Has("tls-ca")) {
    options.tls = true;
    options.tls_ca_file = args.Get("tls-ca");
  }
  FERRY_ASSIGN_OR_RETURN(double timeout, args.GetDouble("timeout", 15, 0.1));
  options.call_timeout = absl::Seconds(timeout);
  return options;
}

absl::StatusOr<ControllerClient> ControllerClient::Connect(const ClientOptions& options) {
  rpc::ClientSecurity security;
  security.tls = options.tls;
  security.ca_file = options.tls_ca_file;
  security.token = options.token;
  FERRY_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel,
                         rpc::CreateClientChannel(options.address, security));
  return ControllerClient(std::move(channel), options.call_timeout, options.address);
}

ControllerClient::ControllerClient(std::shared_ptr<grpc::Channel> channel,
                                   absl::Duration call_timeout, std::string address)
    : channel_(std::move(channel)),
      stub_(ferry::v1::Controller::NewStub(channel_)),
      call_timeout_(call_timeout),
      address_(std::move(address)) {}

void ControllerClient::SetDeadline(grpc::ClientContext* context) const {
  context->set_deadline(absl::ToChronoTime(absl::Now() + call_timeout_));
}

absl::Status ControllerClient::Explain(const grpc::Status& status) const {
  absl::Status s = rpc::FromGrpcStatus(status);
  if (s.code() == absl::StatusCode::kUnavailable ||
      s.code() == absl::StatusCode::kDeadlineExceeded) {
    return absl::Status(s.code(),
                        absl::StrCat("cannot reach the controller at ", address_, " (", s.message(),
                                     "); is ferry-controller running there? "
                                     "(--controller or FERRY_CONTROLLER)"));
  }
  if (s.code() == absl::StatusCode::kUnauthenticated) {
    return absl::UnauthenticatedError(
        absl::StrCat("the controller at ", address_, " refused the call: ", s.message(),
                     " (give its token with --token-file or FERRY_TOKEN)"));
  }
  return s;
}

#define FERRY_UNARY(method, request, response)                       \
  grpc::ClientContext context;                                       \
  SetDeadline(&context);                                             \
  grpc::Status status = stub_->method(&context, request, &response); \
  if (!status.ok()) return Explain(status)

absl::StatusOr<std::string> ControllerClient::Submit(const ferry::v1::JobSpec& spec) {
  ferry::v1::SubmitJobRequest request;
  *request.mutable_spec() = spec;
  ferry::v1::SubmitJobResponse response;
  FERRY_UNARY(SubmitJob, request, response);
  return response.job_id();
}

absl::StatusOr<Job> ControllerClient::Get(const std::string& job_id, bool include_shards) {
  ferry::v1::GetJobRequest request;
  request.set_job_id(job_id);
  request.set_include_shards(include_shards);
  Job job;
  FERRY_UNARY(GetJob, request, job);
  return job;
}

absl::StatusOr<std::vector<Job>> ControllerClient::List() {
  ferry::v1::ListJobsRequest request;
  ferry::v1::ListJobsResponse response;
  FERRY_UNARY(ListJobs, request, response);
  return std::vector<Job>(response.jobs().begin(), response.jobs().end());
}

absl::StatusOr<Job> ControllerClient::Cancel(const std::string& job_id) {
  ferry::v1::CancelJobRequest request;
  request.set_job_id(job_id);
  Job job;
  FERRY_UNARY(CancelJob, request, job);
  return job;
}

absl::StatusOr<Job> ControllerClient::Pause(const std::string& job_id) {
  ferry::v1::PauseJobRequest request;
  request.set_job_id(job_id);
  Job job;
  FERRY_UNARY(PauseJob, request, job);
  return job;
}

absl::StatusOr<Job> ControllerClient::Resume(const std::string& job_id) {
  ferry::v1::ResumeJobRequest request;
  request.set_job_id(job_id);
  Job job;
  FERRY_UNARY(ResumeJob, request, job);
  return job;
}

absl::StatusOr<std::vector<ferry::v1::AgentInfo>> ControllerClient::Agents() {
  ferry::v1::ListAgentsRequest request;
  ferry::v1::ListAgentsResponse response;
  FERRY_UNARY(ListAgents, request, response);
  return std::vector<ferry::v1::AgentInfo>(response.agents().begin(), response.agents().end());
}

absl::StatusOr<ferry::v1::ListFailedKeysResponse> ControllerClient::FailedKeys(
    const std::string& job_id, int limit) {
  ferry::v1::ListFailedKeysRequest request;
  request.set_job_id(job_id);
  request.set_page_size(limit);
  ferry::v1::ListFailedKeysResponse response;
  FERRY_UNARY(ListFailedKeys, request, response);
  return response;
}

absl::StatusOr<ferry::v1::ListFailedKeysResponse> ControllerClient::AllFailedKeys(
    const std::string& job_id) {
  ferry::v1::ListFailedKeysResponse all;
  ferry::v1::ListFailedKeysRequest request;
  request.set_job_id(job_id);
  request.set_page_size(1000);
  do {
    ferry::v1::ListFailedKeysResponse response;
    FERRY_UNARY(ListFailedKeys, request, response);
    for (ferry::v1::FailedKey& key : *response.mutable_keys()) *all.add_keys() = std::move(key);
    all.set_total(response.total());
    request.set_page_token(response.next_page_token());
  } while (!request.page_token().empty());
  return all;
}

absl::StatusOr<Job> ControllerClient::Cutover(const ferry::v1::CutoverJobRequest& request) {
  grpc::ClientContext context;
  const uint32_t timeout = request.timeout_seconds() > 0 ? request.timeout_seconds()
                                                         : wire::kDefaultCutoverTimeoutSeconds;
  context.set_deadline(absl::ToChronoTime(absl::Now() + call_timeout_ + absl::Seconds(timeout)));
  Job job;
  grpc::Status status = stub_->CutoverJob(&context, request, &job);
  if (!status.ok()) return Explain(status);
  return job;
}

#undef FERRY_UNARY

absl::StatusOr<Job> ControllerClient::Watch(const std::string& job_id,
                                            const std::function<void(const Job&)>& on_update,
                                            const std::atomic<bool>* stop,
                                            const std::function<bool(const Job&)>& until) {
  Job last;
  absl::Duration backoff = absl::Milliseconds(200);
  absl::Time give_up = absl::Now() + std::max(call_timeout_, absl::Seconds(60));
  while (stop == nullptr || !stop->load()) {
    grpc::ClientContext context;
    ferry::v1::WatchJobRequest request;
    request.set_job_id(job_id);
    // Often enough that the end of a job is seen at once (ferry migrate waits for it).
    request.set_interval_ms(50);
    std::unique_ptr<grpc::ClientReader<Job>> reader = stub_->WatchJob(&context, request);
    Job job;
    while (reader->Read(&job)) {
      last = job;
      give_up = absl::Now() + std::max(call_timeout_, absl::Seconds(60));
      on_update(job);
      if (until ? until(job) : WatchEnds(job.state())) {
        context.TryCancel();
        (void)reader->Finish();
        return last;
      }
      if (stop != nullptr && stop->load()) {
        context.TryCancel();
        break;
      }
    }
    grpc::Status status = reader->Finish();
    if (stop != nullptr && stop->load()) break;
    absl::Status s = Explain(status);
    // The stream ends for good only on a real answer (NOT_FOUND, UNAUTHENTICATED...); a
    // controller that went away is waited for, within a bound.
    if (!s.ok() && s.code() != absl::StatusCode::kUnavailable &&
        s.code() != absl::StatusCode::kDeadlineExceeded) {
      return s;
    }
    if (absl::Now() > give_up) return s.ok() ? absl::UnavailableError("watch stream ended") : s;
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
  return absl::CancelledError("interrupted");
}

ferry::v1::JobSpec JobSpecFromRequest(const JobRequest& r) {
  ferry::v1::JobSpec spec;
  *spec.mutable_source() = wire::SpecFromEndpoint(r.source);
  *spec.mutable_target() = wire::SpecFromEndpoint(r.target);
  for (int db : r.dbs) spec.add_dbs(db);
  if (r.target_db.has_value()) spec.set_target_db(*r.target_db);
  spec.set_match(r.match);
  spec.set_type(r.type);
  spec.set_batch_keys(r.batch_keys);
  spec.set_rate_limit(r.rate_limit);
  spec.set_rate_limit_bytes(r.rate_limit_bytes);
  spec.set_on_conflict(r.on_conflict == agent::OnConflict::kSkip ? ferry::v1::ON_CONFLICT_SKIP
                       : r.on_conflict == agent::OnConflict::kFail
                           ? ferry::v1::ON_CONFLICT_FAIL
                           : ferry::v1::ON_CONFLICT_REPLACE);
  spec.set_shards(r.shards);
  spec.set_parallel(r.parallel);
  spec.set_dry_run(r.dry_run);
  spec.set_copy_path(r.typed_only ? ferry::v1::COPY_PATH_TYPED : ferry::v1::COPY_PATH_AUTO);
  spec.set_big_key_bytes(r.big_key_bytes);
  spec.set_drop_field_ttls(r.drop_field_ttls);
  spec.set_merge_dbs(r.merge_dbs);
  spec.set_read_from(r.read_from_replicas ? ferry::v1::READ_FROM_REPLICA
                                          : ferry::v1::READ_FROM_PRIMARY);
  if (r.verify) {
    spec.set_kind(ferry::v1::JOB_KIND_VERIFY);
    spec.set_verify_mode(r.verify_full ? ferry::v1::VERIFY_MODE_FULL
                                       : ferry::v1::VERIFY_MODE_QUICK);
  }
  spec.set_ttl_tolerance_ms(r.ttl_tolerance_ms);
  if (r.live) {
    spec.set_live(true);
    spec.set_live_dirty_bytes(r.live_dirty_bytes);
  }
  return spec;
}

std::string StateName(const Job& job) {
  if (job.spec().kind() == ferry::v1::JOB_KIND_VERIFY) {
    if (job.state() == ferry::v1::JOB_STATE_DONE) return "equal";
    if (job.state() == ferry::v1::JOB_STATE_DONE_WITH_ERRORS) return "different";
  }
  return StateName(job.state());
}

bool WatchEnds(JobState state) {
  return wire::IsEnded(state) || state == ferry::v1::JOB_STATE_CUTOVER_READY;
}

std::string StateName(JobState state) {
  switch (state) {
    case ferry::v1::JOB_STATE_PENDING:
      return "pending";
    case ferry::v1::JOB_STATE_RUNNING:
      return "running";
    case ferry::v1::JOB_STATE_PAUSED:
      return "paused";
    case ferry::v1::JOB_STATE_DONE:
      return "done";
    case ferry::v1::JOB_STATE_DONE_WITH_ERRORS:
      return "done-with-errors";
    case ferry::v1::JOB_STATE_FAILED:
      return "failed";
    case ferry::v1::JOB_STATE_CANCELLED:
      return "cancelled";
    case ferry::v1::JOB_STATE_LIVE:
      return "live";
    case ferry::v1::JOB_STATE_CUTOVER:
      return "cutover";
    case ferry::v1::JOB_STATE_CUTOVER_READY:
      return "cutover-ready";
    default:
      return "unknown";
  }
}

ProgressSnapshot SnapshotOfJob(const Job& job, absl::Time start) {
  using google::protobuf::util::TimeUtil;
  ProgressSnapshot s;
  s.counters = job.progress().counters();
  s.estimated_keys = job.progress().estimated_keys();
  s.shards_total = job.progress().shards_total();
  s.shards_done = job.progress().shards_done();
  s.verify = job.spec().kind() == ferry::v1::JOB_KIND_VERIFY;
  s.state = job.state();
  if (job.spec().live() || job.has_live()) s.live = job.live();
  // The controller reports 0 until its window holds a second of samples: averages until then.
  if (job.progress().keys_per_second() > 0) {
    s.keys_per_second = job.progress().keys_per_second();
    s.bytes_per_second = job.progress().bytes_per_second();
  }
  if (job.progress().eta_seconds() > 0) s.eta_seconds = job.progress().eta_seconds();
  s.elapsed = absl::Now() - start;
  if (job.has_create_time()) {
    const absl::Time created =
        absl::FromUnixMillis(TimeUtil::TimestampToMilliseconds(job.create_time()));
    const absl::Time end =
        wire::IsEnded(job.state()) && job.has_update_time()
            ? absl::FromUnixMillis(TimeUtil::TimestampToMilliseconds(job.update_time()))
            : absl::Now();
    s.elapsed = end - created;
  }
  return s;
}

int ExitCodeForJob(const Job& job) {
  switch (job.state()) {
    case ferry::v1::JOB_STATE_DONE:
    case ferry::v1::JOB_STATE_CUTOVER_READY:
      return 0;
    case ferry::v1::JOB_STATE_DONE_WITH_ERRORS:
      return 1;
    case ferry::v1::JOB_STATE_CANCELLED:
      return 130;
    case ferry::v1::JOB_STATE_FAILED: {
      const int code =
          ExitCodeFor(absl::Status(static_cast<absl::StatusCode>(job.error_code()), job.error()));
      return code == 0 ? 1 : code;
    }
    default:
      return 1;
  }
}

}  // namespace ferry::cli
