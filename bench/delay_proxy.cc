// ferry-delay-proxy: a TCP proxy that adds a fixed one-way delay to every byte, in both
// directions, without limiting throughput. It stands in for network latency on loopback, where
// this kernel has no `tc netem`.
//
//   ferry-delay-proxy --listen [HOST:]PORT --upstream HOST:PORT --delay-us N
//
// Each direction of a connection has a reader thread and a writer thread. The reader stamps every
// chunk it reads with `arrival + delay` and queues it; the writer sleeps until the oldest chunk is
// due and then writes every chunk that is due in one writev. Reading never waits for the delay, so
// a pipelined stream keeps flowing: a round trip costs 2 * N us, a bulk transfer costs N us once.
//
// An end of stream is delivered like data, N us after it was read, as a half-close (shutdown
// SHUT_WR) of the other side; a Redis server or redis-cli that sees it closes its socket, which
// closes the opposite direction the same way. A read or write error tears down both sides at once.
// --listen 0 picks a free port. "listening on PORT" is printed to stdout once the socket accepts.

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// Bytes a direction may hold before its reader stops reading. Far above bandwidth * delay on
// loopback (1 GB/s * 2 ms = 2 MB), so it only bounds memory when the receiver stalls.
constexpr size_t kMaxQueuedBytes = 32 << 20;
constexpr size_t kReadBufferBytes = 256 << 10;
constexpr int kMaxIovecs = 64;

struct Options {
  std::string listen_host = "127.0.0.1";
  std::string listen_port;
  std::string upstream_host;
  std::string upstream_port;
  std::chrono::microseconds delay{0};
};

// Data read from one socket, or the end of stream when `data` is empty.
struct Chunk {
  Clock::time_point due;
  std::string data;
};

// One direction of a connection. Shared by its reader and writer threads; all fields guarded by mu.
struct Pipe {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Chunk> chunks;
  size_t queued_bytes = 0;
  bool aborted = false;
};

// A proxied connection: client <-> upstream. Owned jointly (shared_ptr) by its four threads; the
// last one to finish closes both sockets.
class Connection {
 public:
  Connection(int client_fd, int upstream_fd) : fds_{client_fd, upstream_fd} {}
  ~Connection() {
    close(fds_[0]);
    close(fds_[1]);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Starts the four threads; `self` must be the shared_ptr that owns this connection.
  static void Start(const std::shared_ptr<Connection>& self, std::chrono::microseconds delay) {
    for (int dir = 0; dir < 2; ++dir) {
      std::thread([self, dir, delay] { self->ReadLoop(dir, delay); }).detach();
      std::thread([self, dir] { self->WriteLoop(dir); }).detach();
    }
  }

 private:
  // Direction `dir` reads fds_[dir] and writes fds_[1 - dir].
  void ReadLoop(int dir, std::chrono::microseconds delay) {
    Pipe& pipe = pipes_[dir];
    std::vector<char> buffer(kReadBufferBytes);
    while (true) {
      {
        std::unique_lock<std::mutex> lock(pipe.mu);
        pipe.cv.wait(lock, [&] { return pipe.aborted || pipe.queued_bytes < kMaxQueuedBytes; });
        if (pipe.aborted) return;
      }
      ssize_t n = read(fds_[dir], buffer.data(), buffer.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        Abort();
        return;
      }
      Chunk chunk{Clock::now() + delay, std::string(buffer.data(), static_cast<size_t>(n))};
      std::lock_guard<std::mutex> lock(pipe.mu);
      pipe.queued_bytes += chunk.data.size();
      pipe.chunks.push_back(std::move(chunk));
      pipe.cv.notify_all();
      if (n == 0) return;
    }
  }

  void WriteLoop(int dir) {
    // Wake up on time: the default 50 us timer slack would be a fifth of a 250 us delay.
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    Pipe& pipe = pipes_[dir];
    std::vector<Chunk> due;
    while (true) {
      Clock::time_point first_due;
      {
        std::unique_lock<std::mutex> lock(pipe.mu);
        pipe.cv.wait(lock, [&] { return pipe.aborted || !pipe.chunks.empty(); });
        if (pipe.aborted) return;
        first_due = pipe.chunks.front().due;
      }
      // Chunks are queued in due order, so nothing can become due before the front one.
      SleepUntil(first_due);
      bool end_of_stream = false;
      {
        std::lock_guard<std::mutex> lock(pipe.mu);
        Clock::time_point now = Clock::now();
        while (!pipe.chunks.empty() && pipe.chunks.front().due <= now &&
               static_cast<int>(due.size()) < kMaxIovecs && !end_of_stream) {
          end_of_stream = pipe.chunks.front().data.empty();
          due.push_back(std::move(pipe.chunks.front()));
          pipe.chunks.pop_front();
        }
      }
      if (!WriteAll(fds_[1 - dir], due)) {
        Abort();
        return;
      }
      size_t written = 0;
      for (const Chunk& chunk : due) written += chunk.data.size();
      due.clear();
      {
        std::lock_guard<std::mutex> lock(pipe.mu);
        pipe.queued_bytes -= written;
        pipe.cv.notify_all();
      }
      if (end_of_stream) {
        shutdown(fds_[1 - dir], SHUT_WR);
        return;
      }
    }
  }

  static void SleepUntil(Clock::time_point when) {
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch());
    timespec ts{static_cast<time_t>(ns.count() / 1000000000),
                static_cast<long>(ns.count() % 1000000000)};
    // steady_clock is CLOCK_MONOTONIC on Linux.
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    }
  }

  // Writes every byte of `chunks` to `fd`; false on a write error.
  static bool WriteAll(int fd, const std::vector<Chunk>& chunks) {
    iovec iov[kMaxIovecs];
    int count = 0;
    for (const Chunk& chunk : chunks) {
      if (chunk.data.empty()) continue;
      iov[count].iov_base = const_cast<char*>(chunk.data.data());
      iov[count].iov_len = chunk.data.size();
      ++count;
    }
    iovec* next = iov;
    while (count > 0) {
      ssize_t n = writev(fd, next, count);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return false;
      size_t left = static_cast<size_t>(n);
      while (count > 0 && left >= next->iov_len) {
        left -= next->iov_len;
        ++next;
        --count;
      }
      if (count > 0) {
        next->iov_base = static_cast<char*>(next->iov_base) + left;
        next->iov_len -= left;
      }
    }
    return true;
  }

  // Drops all queued data and unblocks every thread of this connection.
  void Abort() {
    for (Pipe& pipe : pipes_) {
      std::lock_guard<std::mutex> lock(pipe.mu);
      pipe.aborted = true;
      pipe.chunks.clear();
      pipe.cv.notify_all();
    }
    shutdown(fds_[0], SHUT_RDWR);
    shutdown(fds_[1], SHUT_RDWR);
  }

  const int fds_[2];
  Pipe pipes_[2];
};

// Splits "host:port" (or "port" when `allow_port_only`); false on a malformed address.
bool SplitHostPort(const std::string& text, bool allow_port_only, std::string* host,
                   std::string* port) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) {
    if (!allow_port_only) return false;
    *port = text;
  } else {
    *host = text.substr(0, colon);
    *port = text.substr(colon + 1);
  }
  return !port->empty() && port->find_first_not_of("0123456789") == std::string::npos;
}

bool ParseFlags(int argc, char** argv, Options* options) {
  bool have_listen = false, have_upstream = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--listen") {
      have_listen = SplitHostPort(value, true, &options->listen_host, &options->listen_port);
      if (!have_listen) return false;
    } else if (flag == "--upstream") {
      have_upstream = SplitHostPort(value, false, &options->upstream_host, &options->upstream_port);
      if (!have_upstream) return false;
    } else if (flag == "--delay-us") {
      char* end = nullptr;
      long long us = std::strtoll(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || us < 0) return false;
      options->delay = std::chrono::microseconds(us);
    } else {
      return false;
    }
  }
  return argc % 2 == 1 && have_listen && have_upstream;
}

// Returns a connected socket or -1, with a message on stderr.
int ConnectUpstream(const Options& options) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  int rc =
      getaddrinfo(options.upstream_host.c_str(), options.upstream_port.c_str(), &hints, &result);
  if (rc != 0) {
    std::fprintf(stderr, "resolve %s: %s\n", options.upstream_host.c_str(), gai_strerror(rc));
    return -1;
  }
  int fd = -1;
  for (addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(result);
  if (fd < 0) std::perror("connect upstream");
  return fd;
}

// Returns a listening socket or -1, with a message on stderr; `*port` receives the bound port.
int Listen(const Options& options, int* port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(options.listen_port.c_str())));
  if (inet_pton(AF_INET, options.listen_host.c_str(), &addr.sin_addr) != 1) {
    std::fprintf(stderr, "--listen: not an IPv4 address: %s\n", options.listen_host.c_str());
    return -1;
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    std::perror("socket");
    return -1;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || listen(fd, 512) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("listen");
    close(fd);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

void SetNoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!ParseFlags(argc, argv, &options)) {
    std::fprintf(stderr,
                 "usage: %s --listen [HOST:]PORT --upstream HOST:PORT --delay-us N\n"
                 "  N is the one-way delay in microseconds (a round trip costs 2 * N).\n",
                 argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  int port = 0;
  int listen_fd = Listen(options, &port);
  if (listen_fd < 0) return 1;
  std::printf("listening on %d\n", port);
  std::fflush(stdout);
  while (true) {
    int client_fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (client_fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      std::perror("accept");
      // Out of descriptors or memory: back off instead of spinning.
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    // Connect off the accept loop so that a slow upstream does not hold up other clients.
    std::thread([client_fd, &options] {
      int upstream_fd = ConnectUpstream(options);
      if (upstream_fd < 0) {
        close(client_fd);
        return;
      }
      SetNoDelay(client_fd);
      SetNoDelay(upstream_fd);
      Connection::Start(std::make_shared<Connection>(client_fd, upstream_fd), options.delay);
    }).detach();
  }
}
