#include "common/testing/resp_proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <iterator>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/base/logging.h"
#include "common/testing/socket_util.h"

namespace ferry::testing {
namespace {

constexpr size_t kReadChunk = 256 << 10;

// -1 (logged) when the upstream cannot be reached; the caller then closes the client.
int ConnectUpstream(const RespProxyOptions& options) {
  const int fd = ConnectTcp(options.upstream_host, options.upstream_port);
  if (fd < 0) {
    FERRY_LOG(Warning) << "resp proxy: cannot connect to " << options.upstream_host << ":"
                       << options.upstream_port << ": " << std::strerror(errno);
  }
  return fd;
}

}  // namespace

// One client socket and its upstream socket. The request thread reads commands, answers the
// refused ones by queueing their reply, and forwards the rest; the response thread reads
// upstream replies and writes every reply to the client in command order. Only the response
// thread writes to the client, so a client that sends a long pipeline before reading never
// blocks the forwarding of its commands.
class RespProxy::ClientConnection {
 public:
  ClientConnection(RespProxy* proxy, int client_fd, int upstream_fd)
      : proxy_(proxy),
        client_fd_(client_fd),
        upstream_fd_(upstream_fd),
        wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    request_thread_ = std::thread([this] { RequestLoop(); });
    response_thread_ = std::thread([this] { ResponseLoop(); });
  }
  ClientConnection(const ClientConnection&) = delete;
  ClientConnection& operator=(const ClientConnection&) = delete;

  // Closes both sockets only after both threads are gone, so no thread uses a reused fd.
  ~ClientConnection() {
    Shutdown();
    request_thread_.join();
    response_thread_.join();
    close(client_fd_);
    close(upstream_fd_);
    if (wake_fd_ >= 0) close(wake_fd_);
  }

  // Makes both threads finish soon: blocked reads return EOF, blocked writes fail. Any thread.
  void Shutdown() {
    shutdown(client_fd_, SHUT_RDWR);
    shutdown(upstream_fd_, SHUT_RDWR);
    Wake();
  }
  bool finished() const { return threads_done_.load() == 2; }

 private:
  // What the client gets for one command, in command order.
  struct PendingReply {
    // When not empty, the whole reply, sent in place of an upstream one (a refused command).
    std::string synthesized;
    bool is_dump = false;  // Its payload gets options.dump_payload_version.
    bool is_info = false;
    std::vector<std::string> info_sections;
    // A hash field TTL read forwarded as HMGET (FieldTtlReply).
    bool is_field_ttl = false;
    std::string field_ttl_error;
  };

  void Wake() {
    const uint64_t one = 1;
    if (wake_fd_ >= 0) (void)!write(wake_fd_, &one, sizeof(one));
  }

  // Queues the reply `argv` will get and appends the bytes to forward, if any, to `forward`.
  void HandleCommand(absl::string_view message, absl::Span<const absl::string_view> argv,
                     std::string* forward, bool* synthesized) {
    const RespProxyOptions& options = proxy_->options_;
    const std::string name = absl::AsciiStrToUpper(argv[0]);
    proxy_->CountCommand(name);
    PendingReply reply;
    if (options.unknown_commands.count(name) > 0) {
      reply.synthesized = UnknownCommandReply(argv);
    } else if (std::optional<std::string> refusal =
                   RefusalReply(name, argv, options.refused_arguments)) {
      reply.synthesized = *std::move(refusal);
    }
    if (reply.synthesized.empty() && options.emulate_hash_field_ttl_reads &&
        IsHashFieldTtlRead(name)) {
      FieldTtlRead read = RewriteFieldTtlRead(argv);
      reply.synthesized = std::move(read.reply);
      forward->append(read.forward);
      reply.is_field_ttl = reply.synthesized.empty();
      reply.field_ttl_error = std::move(read.argument_error);
    }
    if (!reply.synthesized.empty()) {
      *synthesized = true;
    } else if (!reply.is_field_ttl) {
      Forward(name, message, argv, forward);
      reply.is_dump = name == "DUMP" && options.dump_payload_version > 0;
      reply.is_info = name == "INFO" && RewritesInfo(options);
      for (size_t i = 1; reply.is_info && i < argv.size(); ++i) {
        reply.info_sections.emplace_back(argv[i]);
      }
    }
    absl::MutexLock lock(&mu_);
    pending_.push_back(std::move(reply));
  }

  // Appends `message` to `forward`, a RESTORE's payload with the version the pretended server
  // makes 7.0 read it with (RestoreForwardVersion).
  void Forward(absl::string_view name, absl::string_view message,
               absl::Span<const absl::string_view> argv, std::string* forward) const {
    const size_t start = forward->size();
    forward->append(message.data(), message.size());
    if (name != "RESTORE" || argv.size() < 4) return;
    const std::optional<int> version = RestoreForwardVersion(argv[3], proxy_->options_);
    if (!version.has_value()) return;
    // argv views `message`, so the payload sits at the same offset in the copy.
    char* payload = forward->data() + start + static_cast<size_t>(argv[3].data() - message.data());
    SetPayloadVersionInPlace(payload, argv[3].size(), *version);
  }

  // Queues a reply for, and forwards, every complete command in `framer`. The bytes to send
  // upstream go to `forward`; `synthesized` is set when a refused command queued its reply.
  absl::Status TakeCommands(RespFramer& framer, std::string* forward, bool* synthesized) {
    while (true) {
      absl::StatusOr<std::optional<absl::string_view>> message = framer.Next();
      if (!message.ok()) return message.status();
      if (!message->has_value()) return absl::OkStatus();
      absl::StatusOr<std::vector<absl::string_view>> argv = ParseCommand(**message);
      if (!argv.ok()) return argv.status();
      if (!argv->empty()) HandleCommand(**message, *argv, forward, synthesized);
    }
  }

  void RequestLoop() {
    RespFramer framer(/*inline_commands=*/true);
    std::string chunk(kReadChunk, '\0');
    std::string forward;
    absl::Status status;
    while (status.ok()) {
      const ssize_t n = recv(client_fd_, chunk.data(), chunk.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      framer.Append(absl::string_view(chunk.data(), static_cast<size_t>(n)));
      forward.clear();
      bool synthesized = false;
      status = TakeCommands(framer, &forward, &synthesized);
      if (!status.ok()) FERRY_LOG(Warning) << "resp proxy: closing a client: " << status;
      if (synthesized) Wake();
      // Queued before sent: no reply can arrive before its PendingReply exists.
      if (!SendAll(upstream_fd_, forward)) break;
    }
    // The client is gone, spoke garbage, or the upstream is gone: so is the pair.
    Shutdown();
    ++threads_done_;
  }

  // Moves the synthesized replies at the front of the queue into `out`.
  void TakeSynthesized(std::string* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (!pending_.empty() && !pending_.front().synthesized.empty()) {
      out->append(pending_.front().synthesized);
      pending_.pop_front();
    }
  }

  // Appends one upstream reply to `out`, after the synthesized replies due before it.
  void DeliverUpstreamReply(absl::string_view reply, std::string* out) {
    std::optional<PendingReply> expected;
    {
      absl::MutexLock lock(&mu_);
      TakeSynthesized(out);
      // Empty only for replies no command asked for (pub/sub messages): passed through.
      if (!pending_.empty()) {
        expected = std::move(pending_.front());
        pending_.pop_front();
      }
    }
    if (expected.has_value() && expected->is_info) {
      out->append(RewriteInfoReply(reply, expected->info_sections, proxy_->options_));
    } else if (expected.has_value() && expected->is_field_ttl) {
      out->append(FieldTtlReply(reply, expected->field_ttl_error));
    } else if (expected.has_value() && expected->is_dump) {
      AppendDumpReply(reply, proxy_->options_.dump_payload_version, out);
    } else {
      out->append(reply.data(), reply.size());
    }
  }

  // Reads upstream bytes into `framer` and delivers every complete reply; false when the
  // upstream is gone or spoke garbage.
  bool ReadUpstream(RespFramer& framer, std::string& chunk, std::string* out) {
    const ssize_t n = recv(upstream_fd_, chunk.data(), chunk.size(), 0);
    if (n < 0 && errno == EINTR) return true;
    if (n <= 0) return false;
    framer.Append(absl::string_view(chunk.data(), static_cast<size_t>(n)));
    while (true) {
      absl::StatusOr<std::optional<absl::string_view>> reply = framer.Next();
      if (!reply.ok()) {
        FERRY_LOG(Warning) << "resp proxy: closing a client: upstream sent " << reply.status();
        return false;
      }
      if (!reply->has_value()) return true;
      DeliverUpstreamReply(**reply, out);
    }
  }

  void ResponseLoop() {
    RespFramer framer(/*inline_commands=*/false);
    std::string chunk(kReadChunk, '\0');
    std::string out;
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        TakeSynthesized(&out);
      }
      if (!SendAll(client_fd_, out)) break;
      out.clear();
      pollfd fds[2] = {{upstream_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (fds[1].revents != 0) {
        uint64_t count;
        (void)!read(wake_fd_, &count, sizeof(count));
      }
      if (fds[0].revents != 0 && !ReadUpstream(framer, chunk, &out)) {
        SendAll(client_fd_, out);  // Replies that arrived before the upstream closed.
        break;
      }
    }
    Shutdown();
    ++threads_done_;
  }

  RespProxy* const proxy_;
  const int client_fd_;
  const int upstream_fd_;
  const int wake_fd_;  // eventfd: the request thread queued a synthesized reply.

  absl::Mutex mu_;
  std::deque<PendingReply> pending_ ABSL_GUARDED_BY(mu_);

  std::atomic<int> threads_done_{0};
  std::thread request_thread_;
  std::thread response_thread_;
};

// ---------------------------------------------------------------- the proxy

absl::StatusOr<std::unique_ptr<RespProxy>> RespProxy::Start(RespProxyOptions options) {
  in_addr ignored;
  if (options.upstream_port <= 0 || options.upstream_port > 65535 ||
      inet_pton(AF_INET, options.upstream_host.c_str(), &ignored) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "resp proxy: bad upstream address ", options.upstream_host, ":", options.upstream_port));
  }
  std::set<std::string> unknown;
  for (const std::string& name : options.unknown_commands) {
    unknown.insert(absl::AsciiStrToUpper(name));
  }
  options.unknown_commands = std::move(unknown);

  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;  // The kernel picks a free port: no race with other tests.
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(fd, SOMAXCONN) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const int error = errno;
    close(fd);
    return absl::InternalError(absl::StrCat("resp proxy: cannot listen: ", std::strerror(error)));
  }
  return std::unique_ptr<RespProxy>(new RespProxy(std::move(options), fd, ntohs(addr.sin_port)));
}

RespProxy::RespProxy(RespProxyOptions options, int listen_fd, int port)
    : options_(std::move(options)), listen_fd_(listen_fd), port_(port) {
  accept_thread_ = std::thread([this] { AcceptLoop(); });
}

RespProxy::~RespProxy() {
  {
    absl::MutexLock lock(&connections_mu_);
    stopping_ = true;
  }
  shutdown(listen_fd_, SHUT_RDWR);  // Linux: wakes the accept() below with EINVAL.
  accept_thread_.join();
  close(listen_fd_);
  std::vector<std::unique_ptr<ClientConnection>> connections;
  {
    absl::MutexLock lock(&connections_mu_);
    connections.swap(connections_);
  }
  for (auto& connection : connections) connection->Shutdown();
  connections.clear();  // Joins their threads.
}

void RespProxy::AcceptLoop() {
  while (true) {
    const int client_fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    const int accept_errno = errno;
    if (client_fd < 0) {
      if (absl::MutexLock lock(&connections_mu_); stopping_) return;
      if (accept_errno != EINTR && accept_errno != ECONNABORTED) {
        FERRY_LOG(Warning) << "resp proxy: accept: " << std::strerror(accept_errno);
        absl::SleepFor(absl::Milliseconds(10));  // EMFILE and the like: do not spin.
      }
      continue;
    }
    const int upstream_fd = ConnectUpstream(options_);
    if (upstream_fd < 0) {
      close(client_fd);  // What a client of a dead server sees.
      continue;
    }
    SetNoDelay(client_fd);
    std::vector<std::unique_ptr<ClientConnection>> finished;  // Joined after the unlock.
    absl::MutexLock lock(&connections_mu_);
    if (stopping_) {
      close(client_fd);
      close(upstream_fd);
      return;
    }
    auto done =
        std::stable_partition(connections_.begin(), connections_.end(),
                              [](const auto& connection) { return !connection->finished(); });
    std::move(done, connections_.end(), std::back_inserter(finished));
    connections_.erase(done, connections_.end());
    connections_.push_back(std::make_unique<ClientConnection>(this, client_fd, upstream_fd));
  }
}

uint64_t RespProxy::commands_seen(absl::string_view upper_name) const {
  absl::MutexLock lock(&counts_mu_);
  auto it = counts_.find(upper_name);
  return it == counts_.end() ? 0 : it->second;
}

void RespProxy::CountCommand(absl::string_view name) {
  absl::MutexLock lock(&counts_mu_);
  ++counts_[std::string(name)];
}

}  // namespace ferry::testing
