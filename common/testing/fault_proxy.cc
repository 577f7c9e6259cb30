#include "common/testing/fault_proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/base/logging.h"
#include "common/testing/resp_proxy.h"
#include "common/testing/socket_util.h"

namespace ferry::testing {
namespace {

constexpr size_t kReadChunk = 64 << 10;
// How often a blocked thread looks at its link's state (closing, stalls).
constexpr int kPollMs = 20;

int ConnectUpstream(const FaultProxyOptions& options) {
  return ConnectTcp(options.upstream_host, options.upstream_port);
}

int64_t NowNs() { return absl::ToUnixNanos(absl::Now()); }

bool IsSubscribe(absl::string_view name) {
  return absl::EqualsIgnoreCase(name, "SUBSCRIBE") || absl::EqualsIgnoreCase(name, "PSUBSCRIBE") ||
         absl::EqualsIgnoreCase(name, "SSUBSCRIBE");
}

}  // namespace

const char* FaultKindName(FaultKind kind) {
  switch (kind) {
    case FaultKind::kReset:
      return "reset";
    case FaultKind::kStall:
      return "stall";
    case FaultKind::kCut:
      return "cut";
    case FaultKind::kTrickle:
      return "trickle";
    case FaultKind::kDropSubscribers:
      return "drop-subscribers";
  }
  return "?";
}

// One client connection and its upstream connection, a thread per direction. Either
// direction ending ends both. The sockets are closed only by the destructor, after both threads
// are joined, so no thread ever uses a reused fd.
class FaultProxy::Link {
 public:
  Link(FaultProxy* proxy, int client_fd, int upstream_fd)
      : proxy_(proxy), client_fd_(client_fd), upstream_fd_(upstream_fd) {
    up_ = std::thread([this] { Pump(/*downstream=*/false); });
    down_ = std::thread([this] { Pump(/*downstream=*/true); });
  }
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;
  ~Link() {
    Close(/*reset=*/false);
    up_.join();
    down_.join();
    close(client_fd_);
    close(upstream_fd_);
  }

  // Ends both directions soon; with `reset` the client gets an RST (connect(AF_UNSPEC) aborts a
  // TCP socket and keeps its fd), else a FIN. Any thread.
  void Close(bool reset) {
    if (closing_.exchange(true)) return;
    if (reset) {
      sockaddr unspec{};
      unspec.sa_family = AF_UNSPEC;
      connect(client_fd_, &unspec, sizeof(unspec));
    }
    shutdown(client_fd_, SHUT_RDWR);
    shutdown(upstream_fd_, SHUT_RDWR);
  }
  // The server's next `bytes` bytes still reach the client; then the link closes.
  void CutAfter(uint64_t bytes) { cut_budget_ = static_cast<int64_t>(bytes); }
  bool subscriber() const { return subscriber_; }
  bool finished() const { return done_ == 2; }
  bool closing() const { return closing_; }

 private:
  void Pump(bool downstream) {
    const int from = downstream ? upstream_fd_ : client_fd_;
    const int to = downstream ? client_fd_ : upstream_fd_;
    std::string buf(kReadChunk, '\0');
    while (!closing_) {
      proxy_->WaitWhileStalled(closing_);
      pollfd pfd{from, POLLIN, 0};
      const int ready = poll(&pfd, 1, kPollMs);
      if (ready == 0 || (ready < 0 && errno == EINTR)) continue;
      const ssize_t n = ready < 0 ? -1 : recv(from, buf.data(), buf.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      if (!downstream) Sniff(absl::string_view(buf.data(), static_cast<size_t>(n)));
      proxy_->WaitWhileStalled(closing_);
      const bool sent = downstream
                            ? Deliver(buf.data(), static_cast<size_t>(n))
                            : SendAll(to, absl::string_view(buf.data(), static_cast<size_t>(n)));
      if (!sent) break;
    }
    Close(/*reset=*/false);
    ++done_;
  }

  // Upstream bytes to the client: cut short by CutAfter, in pieces while a trickle lasts.
  bool Deliver(const char* data, size_t size) {
    const int64_t budget = cut_budget_.load();
    const bool cut = budget >= 0 && static_cast<uint64_t>(budget) <= size;
    if (cut) size = static_cast<size_t>(budget);
    if (budget >= 0) cut_budget_ = cut ? -1 : budget - static_cast<int64_t>(size);
    int piece = proxy_->TricklePiece();
    if (piece == 0 && !SendAll(client_fd_, absl::string_view(data, size))) return false;
    // Pieces of 1..piece bytes, each its own segment (TCP_NODELAY), a pause every 16 of them
    // so that the client's reads see them apart.
    size_t pieces = 0;
    for (size_t sent = 0, n = 0; piece > 0 && sent < size; sent += n) {
      n = std::min<size_t>(size - sent, 1 + (sent * 7919 + size) % piece);
      if (!SendAll(client_fd_, absl::string_view(data + sent, n))) return false;
      if (++pieces % 16 == 0) absl::SleepFor(absl::Microseconds(50));
      if (closing_) return false;
    }
    if (cut) Close(/*reset=*/false);
    return !cut;
  }

  // Frames the client's commands until it subscribes (or sends something unframeable).
  void Sniff(absl::string_view bytes) {
    if (!sniffing_) return;
    framer_.Append(bytes);
    while (true) {
      absl::StatusOr<std::optional<absl::string_view>> message = framer_.Next();
      if (!message.ok()) {
        sniffing_ = false;
        return;
      }
      if (!message->has_value()) return;
      absl::StatusOr<std::vector<absl::string_view>> argv = ParseCommand(**message);
      if (argv.ok() && !argv->empty() && IsSubscribe((*argv)[0])) {
        subscriber_ = true;
        sniffing_ = false;
        return;
      }
    }
  }

  FaultProxy* const proxy_;
  const int client_fd_;
  const int upstream_fd_;
  std::atomic<bool> closing_{false};
  std::atomic<int64_t> cut_budget_{-1};
  std::atomic<bool> subscriber_{false};
  std::atomic<int> done_{0};
  // The client->upstream thread's.
  RespFramer framer_{/*inline_commands=*/true};
  bool sniffing_ = true;
  std::thread up_;
  std::thread down_;
};

absl::StatusOr<std::unique_ptr<FaultProxy>> FaultProxy::Start(FaultProxyOptions options) {
  in_addr ignored;
  if (options.upstream_port <= 0 || options.upstream_port > 65535 ||
      inet_pton(AF_INET, options.upstream_host.c_str(), &ignored) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "fault proxy: bad upstream address ", options.upstream_host, ":", options.upstream_port));
  }
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(fd, SOMAXCONN) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const int error = errno;
    close(fd);
    return absl::InternalError(absl::StrCat("fault proxy: cannot listen: ", std::strerror(error)));
  }
  return std::unique_ptr<FaultProxy>(new FaultProxy(std::move(options), fd, ntohs(addr.sin_port)));
}

FaultProxy::FaultProxy(FaultProxyOptions options, int listen_fd, int port)
    : options_(std::move(options)),
      listen_fd_(listen_fd),
      port_(port),
      start_(absl::Now()),
      rng_(options_.seed) {
  accept_thread_ = std::thread([this] { AcceptLoop(); });
  fault_thread_ = std::thread([this] { FaultLoop(); });
}

FaultProxy::~FaultProxy() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  shutdown(listen_fd_, SHUT_RDWR);
  accept_thread_.join();
  fault_thread_.join();
  close(listen_fd_);
  std::vector<std::unique_ptr<Link>> links;
  {
    absl::MutexLock lock(&mu_);
    links.swap(links_);
  }
  for (auto& link : links) link->Close(/*reset=*/false);
  links.clear();
}

std::string FaultProxy::uri() const { return absl::StrCat("redis://127.0.0.1:", port_); }

void FaultProxy::AcceptLoop() {
  while (true) {
    const int client_fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client_fd < 0) {
      if (absl::MutexLock lock(&mu_); stopping_) return;
      if (errno != EINTR && errno != ECONNABORTED) absl::SleepFor(absl::Milliseconds(10));
      continue;
    }
    const int upstream_fd = ConnectUpstream(options_);
    if (upstream_fd < 0) {
      close(client_fd);  // What a client of a dead server sees.
      continue;
    }
    SetNoDelay(client_fd);
    ++accepted_;
    std::vector<std::unique_ptr<Link>> finished;  // Joined after the unlock.
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      close(client_fd);
      close(upstream_fd);
      return;
    }
    auto done = std::stable_partition(links_.begin(), links_.end(),
                                      [](const auto& link) { return !link->finished(); });
    std::move(done, links_.end(), std::back_inserter(finished));
    links_.erase(done, links_.end());
    links_.push_back(std::make_unique<Link>(this, client_fd, upstream_fd));
  }
}

void FaultProxy::FaultLoop() {
  std::vector<ScheduledFault> schedule = options_.schedule;
  std::sort(schedule.begin(), schedule.end(),
            [](const ScheduledFault& a, const ScheduledFault& b) { return a.at < b.at; });
  size_t next_scheduled = 0;
  const bool random =
      options_.random_every > absl::ZeroDuration() && !options_.random_kinds.empty();
  absl::Time next_random = absl::InfiniteFuture();
  auto draw_next_random = [&] {
    absl::MutexLock lock(&mu_);
    const double factor = std::uniform_real_distribution<double>(0.5, 1.5)(rng_);
    next_random = absl::Now() + options_.random_every * factor;
  };
  if (random) draw_next_random();
  while (true) {
    const absl::Time next_at = next_scheduled < schedule.size()
                                   ? std::min(start_ + schedule[next_scheduled].at, next_random)
                                   : next_random;
    {
      absl::MutexLock lock(&mu_);
      auto stopping = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_; };
      mu_.AwaitWithDeadline(absl::Condition(&stopping), next_at);
      if (stopping_) return;
    }
    const absl::Time now = absl::Now();
    if (next_scheduled < schedule.size() && now >= start_ + schedule[next_scheduled].at) {
      Inject(schedule[next_scheduled++].fault);
    }
    if (random && now >= next_random) {
      Inject(DrawFault());
      draw_next_random();
    }
  }
}

Fault FaultProxy::DrawFault() {
  absl::MutexLock lock(&mu_);
  Fault fault;
  const std::vector<FaultKind>& kinds = options_.random_kinds;
  fault.kind = kinds[std::uniform_int_distribution<size_t>(0, kinds.size() - 1)(rng_)];
  std::uniform_real_distribution<double> unit(0.1, 1.0);
  fault.duration = absl::Trunc(
      (fault.kind == FaultKind::kStall ? options_.max_stall : options_.max_trickle) * unit(rng_),
      absl::Milliseconds(1));
  fault.bytes = std::uniform_int_distribution<uint64_t>(0, options_.max_cut_bytes)(rng_);
  fault.max_piece = std::uniform_int_distribution<int>(1, 4)(rng_);
  fault.only_one = std::bernoulli_distribution(0.5)(rng_);
  return fault;
}

int FaultProxy::Inject(const Fault& fault) {
  absl::MutexLock lock(&mu_);
  std::vector<Link*> open;
  for (const auto& link : links_) {
    if (link->closing()) continue;
    if (fault.kind == FaultKind::kDropSubscribers && !link->subscriber()) continue;
    open.push_back(link.get());
  }
  const bool one = fault.only_one && !open.empty() &&
                   (fault.kind == FaultKind::kReset || fault.kind == FaultKind::kCut);
  if (one) {
    Link* chosen = open[std::uniform_int_distribution<size_t>(0, open.size() - 1)(rng_)];
    open = {chosen};
  }
  const int64_t until = NowNs() + absl::ToInt64Nanoseconds(fault.duration);
  std::string what = FaultKindName(fault.kind);
  switch (fault.kind) {
    case FaultKind::kReset:
    case FaultKind::kDropSubscribers:
      for (Link* link : open) link->Close(/*reset=*/true);
      break;
    case FaultKind::kCut:
      for (Link* link : open) link->CutAfter(fault.bytes);
      absl::StrAppend(&what, " after ", fault.bytes, " bytes");
      break;
    case FaultKind::kStall:
      stall_until_ns_ = std::max(stall_until_ns_.load(), until);
      absl::StrAppend(&what, " ", absl::FormatDuration(fault.duration));
      break;
    case FaultKind::kTrickle:
      trickle_piece_ = std::max(fault.max_piece, 1);
      trickle_until_ns_ = std::max(trickle_until_ns_.load(), until);
      absl::StrAppend(&what, " ", absl::FormatDuration(fault.duration), " in pieces of 1-",
                      std::max(fault.max_piece, 1), " bytes");
      break;
  }
  const std::string line = absl::StrCat(
      "+", absl::FormatDuration(absl::Trunc(absl::Now() - start_, absl::Milliseconds(1))), " ",
      what, ": ", open.size(), one ? " connection (one of several)" : " connections");
  FERRY_LOG(Info) << "fault proxy :" << port_ << " " << line;
  log_.push_back(line);
  return static_cast<int>(open.size());
}

void FaultProxy::WaitWhileStalled(const std::atomic<bool>& closing) const {
  while (!closing && NowNs() < stall_until_ns_.load()) absl::SleepFor(absl::Milliseconds(5));
}

int FaultProxy::TricklePiece() const {
  return NowNs() < trickle_until_ns_.load() ? trickle_piece_.load() : 0;
}

std::vector<std::string> FaultProxy::log() const {
  absl::MutexLock lock(&mu_);
  return log_;
}

uint64_t FaultProxy::faults_injected() const {
  absl::MutexLock lock(&mu_);
  return log_.size();
}

int FaultProxy::open_connections() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(std::count_if(links_.begin(), links_.end(),
                                        [](const auto& link) { return !link->closing(); }));
}

int FaultProxy::subscribers() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(std::count_if(links_.begin(), links_.end(), [](const auto& link) {
    return !link->closing() && link->subscriber();
  }));
}

}  // namespace ferry::testing
