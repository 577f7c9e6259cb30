#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cli/args.h"
#include "cli/job_options.h"
#include "cli/progress.h"
#include "ferry/v1/ferry.grpc.pb.h"

namespace ferry::cli {

// How the CLI reaches a controller.
struct ClientOptions {
  std::string address;  // host:port
  std::string token;    // Bearer token; empty sends none.
  bool tls = false;
  std::string tls_ca_file;
  absl::Duration call_timeout = absl::Seconds(15);
};

// The flags behind ClientOptions (--controller, --token-file, --tls-ca, --timeout).
std::vector<FlagSpec> ClientFlags();
// --controller, else FERRY_CONTROLLER, else 127.0.0.1:7420; --token-file, else FERRY_TOKEN.
absl::StatusOr<ClientOptions> ClientOptionsFromArgs(const Args& args);

// A controller's Controller service with a deadline on every call. Errors are absl statuses
// whose messages say what to do ("is ferry-controller running at ...?").
class ControllerClient {
 public:
  static absl::StatusOr<ControllerClient> Connect(const ClientOptions& options);
  // Over an existing channel (an embedded controller's in-process one).
  ControllerClient(std::shared_ptr<grpc::Channel> channel, absl::Duration call_timeout,
                   std::string address);

  absl::StatusOr<std::string> Submit(const ferry::v1::JobSpec& spec);
  // With `include_shards`, Job.shards too.
  absl::StatusOr<ferry::v1::Job> Get(const std::string& job_id, bool include_shards = false);
  absl::StatusOr<std::vector<ferry::v1::Job>> List();
  absl::StatusOr<ferry::v1::Job> Cancel(const std::string& job_id);
  absl::StatusOr<ferry::v1::Job> Pause(const std::string& job_id);
  absl::StatusOr<ferry::v1::Job> Resume(const std::string& job_id);
  absl::StatusOr<std::vector<ferry::v1::AgentInfo>> Agents();
  // Up to `limit` failed keys and the total count.
  absl::StatusOr<ferry::v1::ListFailedKeysResponse> FailedKeys(const std::string& job_id,
                                                               int limit);
  // Every failed key, page by page, in one answer.
  absl::StatusOr<ferry::v1::ListFailedKeysResponse> AllFailedKeys(const std::string& job_id);
  // Asks a live job for its cutover. The call's deadline is the usual one plus the cutover's
  // own timeout, in case the controller answers only once it has converged.
  absl::StatusOr<ferry::v1::Job> Cutover(const ferry::v1::CutoverJobRequest& request);
  // Streams the job to `on_update` until `until` holds for an update (returns it; by default
  // WatchEnds of its state) or `stop` is set. Reconnects the stream when it breaks (the
  // controller may restart).
  absl::StatusOr<ferry::v1::Job> Watch(
      const std::string& job_id, const std::function<void(const ferry::v1::Job&)>& on_update,
      const std::atomic<bool>* stop,
      const std::function<bool(const ferry::v1::Job&)>& until = nullptr);

 private:
  absl::Status Explain(const grpc::Status& status) const;
  void SetDeadline(grpc::ClientContext* context) const;

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<ferry::v1::Controller::Stub> stub_;
  absl::Duration call_timeout_;
  std::string address_;
};

// The JobSpec of a JobRequest: URIs without passwords, passwords in their own fields.
ferry::v1::JobSpec JobSpecFromRequest(const JobRequest& request);

// Where following a job stops: it ended (wire::IsEnded), or a live job's cutover is ready.
bool WatchEnds(ferry::v1::JobState state);

// done, done-with-errors, failed, live, cutover, cutover-ready...
std::string StateName(ferry::v1::JobState state);
// A job's state as its report says it: a verify job that ended is "equal" or "different".
std::string StateName(const ferry::v1::Job& job);
ProgressSnapshot SnapshotOfJob(const ferry::v1::Job& job, absl::Time start);
// The exit code `ferry watch` and `ferry migrate` return for a finished job (0 for a live job
// whose cutover is ready: it converged).
int ExitCodeForJob(const ferry::v1::Job& job);

}  // namespace ferry::cli
