#include "agent/session.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "agent/hub_stream.h"
#include "agent/metrics.h"
#include "common/base/backoff.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/rpc/credentials.h"
#include "common/rpc/status.h"
#include "ferry/v1/ferry.grpc.pb.h"

namespace ferry::agent {
namespace {

// How often a connection attempt looks at Shutdown() while the controller is unreachable.
constexpr absl::Duration kTick = absl::Milliseconds(100);
constexpr absl::Duration kInitialBackoff = absl::Milliseconds(250);
// How long a connection attempt may keep failing before the stream is opened anyway, to learn
// gRPC's reason for the failure.
constexpr absl::Duration kConnectFailureGrace = absl::Seconds(1);
// Keepalive pings find a dead connection while no report waits for an answer. Not below the
// server's default minimum ping interval (5 min), or the server would answer with GOAWAY.
constexpr int kKeepaliveTimeMs = 310 * 1000;
constexpr int kKeepaliveTimeoutMs = 20 * 1000;

// ------------------------------------------------------------------------------------------
// The channel.

absl::StatusOr<std::shared_ptr<grpc::Channel>> BuildChannel(const AgentOptions& options) {
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options.tls || !options.tls_ca_file.empty()) {
    grpc::SslCredentialsOptions ssl;
    if (!options.tls_ca_file.empty()) {
      FERRY_ASSIGN_OR_RETURN(ssl.pem_root_certs, rpc::ReadFileContents(options.tls_ca_file));
    }
    credentials = grpc::SslCredentials(ssl);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  grpc::ChannelArguments args;
  // gRPC's own reconnect backoff (up to 2 minutes by default) would outlast ours. Not
  // GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC also uses it as the timeout of one connection
  // attempt (TCP and TLS handshakes), 20 s by default.
  const int max_backoff_ms =
      std::max(250, static_cast<int>(absl::ToInt64Milliseconds(options.max_backoff)));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 250);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, max_backoff_ms);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, kKeepaliveTimeMs);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveTimeoutMs);
  return grpc::CreateCustomChannel(options.controller_address, credentials, args);
}

std::string DefaultName() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return absl::StrCat(host[0] != '\0' ? host : "agent", ":", getpid());
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Agent

absl::Status Agent::ValidateOptions(const AgentOptions& options) {
  if (options.controller_address.empty()) {
    return absl::InvalidArgumentError("the controller address is empty");
  }
  if (options.slots < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("slots must be at least 1 (got ", options.slots, ")"));
  }
  if (!options.tls_ca_file.empty()) {
    FERRY_RETURN_IF_ERROR(
        Annotate(rpc::ReadFileContents(options.tls_ca_file).status(), "TLS CA file"));
  }
  return absl::OkStatus();
}

std::unique_ptr<Agent> Agent::Create(AgentOptions options, std::shared_ptr<grpc::Channel> channel) {
  if (options.name.empty()) options.name = DefaultName();
  if (channel != nullptr && options.controller_address.empty()) {
    options.controller_address = "(in-process)";
  }
  if (absl::Status status = ValidateOptions(options); !status.ok()) {
    FERRY_LOG(Error) << "agent options: " << status.message();
    return nullptr;
  }
  const bool own_channel = channel == nullptr;
  if (own_channel) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> built = BuildChannel(options);
    if (!built.ok()) {
      FERRY_LOG(Error) << "agent channel: " << built.status().message();
      return nullptr;
    }
    channel = *std::move(built);
  }
  return std::unique_ptr<Agent>(new Agent(std::move(options), std::move(channel), own_channel));
}

Agent::Agent(AgentOptions options, std::shared_ptr<grpc::Channel> channel, bool own_channel)
    : options_(std::move(options)), channel_(std::move(channel)), own_channel_(own_channel) {}

Agent::~Agent() = default;

void Agent::Shutdown() {
  absl::MutexLock lock(&mu_);
  shutdown_ = true;
}

bool Agent::shutdown_requested() {
  absl::MutexLock lock(&mu_);
  return shutdown_;
}

bool Agent::SleepUnlessShutdown(absl::Duration duration) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&shutdown_), duration);
  return shutdown_;
}

absl::Status Agent::WaitForChannel() {
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + options_.connect_timeout;
  grpc_connectivity_state state = channel_->GetState(/*try_to_connect=*/true);
  if (state == GRPC_CHANNEL_TRANSIENT_FAILURE) {
    // Left from an earlier attempt: connect now, not after gRPC's own backoff, so this
    // attempt and its log line say how the controller is doing now.
    grpc::experimental::ChannelResetConnectionBackoff(channel_.get());
  }
  while (state != GRPC_CHANNEL_READY) {
    if (shutdown_requested()) return absl::CancelledError("shutting down");
    const absl::Time now = absl::Now();
    // Still failing a moment after the retry: opening the stream then fails at once, with
    // gRPC's reason (refused, TLS handshake...).
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE && now - start >= kConnectFailureGrace) {
      return absl::OkStatus();
    }
    if (now >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("no connection within ", absl::FormatDuration(options_.connect_timeout)));
    }
    // Short slices, so Shutdown() is noticed while the controller is unreachable.
    channel_->WaitForStateChange(state, absl::ToChronoTime(std::min(deadline, now + kTick)));
    state = channel_->GetState(/*try_to_connect=*/true);
  }
  return absl::OkStatus();
}

absl::Status Agent::Run() {
  Backoff backoff(kInitialBackoff, options_.max_backoff);
  absl::BitGen random;
  for (int attempt = 1; !shutdown_requested(); ++attempt) {
    bool registered = false;
    absl::Status status = own_channel_ ? WaitForChannel() : absl::OkStatus();
    if (status.ok()) {
      const std::unique_ptr<v1::AgentHub::Stub> stub = v1::AgentHub::NewStub(channel_);
      HubStream stream(options_, stub.get(), [this] { return shutdown_requested(); });
      status = stream.Run(&registered);
      if (options_.metrics != nullptr) options_.metrics->SetConnected(false);
    }
    if (shutdown_requested()) break;
    // A refused token or name does not fix itself: retrying would only hide it. Anything else
    // (UNAVAILABLE while the controller restarts, a deadline) is retried.
    if (absl::IsUnauthenticated(status) || absl::IsPermissionDenied(status)) {
      FERRY_LOG(Error) << "controller at " << options_.controller_address
                       << " refused this agent: " << status.ToString() << "; giving up";
      return absl::Status(
          status.code(), absl::StrCat("the controller at ", options_.controller_address,
                                      " refused this agent (", status.ToString(),
                                      "); check the token given with --token-file or FERRY_TOKEN"));
    }
    if (registered) {
      attempt = 1;
      backoff.Reset();
    }
    const absl::Duration wait = backoff.Next(random);
    if (options_.metrics != nullptr) options_.metrics->Reconnecting();
    FERRY_LOG(Warning) << "controller at " << options_.controller_address << ": "
                       << status.ToString() << " (attempt " << attempt << "); reconnecting in "
                       << absl::FormatDuration(absl::Trunc(wait, absl::Milliseconds(1)));
    if (SleepUnlessShutdown(wait)) break;
  }
  FERRY_LOG(Info) << "agent stopped";
  return absl::OkStatus();
}

}  // namespace ferry::agent
