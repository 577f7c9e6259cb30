// Resource bounds under bad peers (issue 15, item 5): `ferry migrate --from` a TCP server of
// the test's own that accepts and never answers, claims a 4 GB bulk string and streams bytes,
// sends a line that never ends, an array of two billion elements, HTTP, or random bytes.
// Each must fail with a clear error within the connect timeout (5 s) plus a few seconds, its
// peak RSS (VmHWM of the child, polled) bounded. Before the fix: 61 s for the silent peer,
// 8.2 GB for the 4 GB claim.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/redis/connection.h"
#include "common/testing/process.h"
#include "common/testing/redis_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/ferry_cli.h"

namespace ferry::testing {
namespace {

using ::testing::HasSubstr;

enum class Misbehaviour {
  kSilent,         // Accepts, reads, never writes.
  kHugeBulk,       // "$4294967296\r\n", then 'x' as fast as the client reads.
  kHugeBulkLater,  // +PONG to the first command, then kHugeBulk to the next.
  kEndlessLine,    // "+" then bytes without CRLF.
  kHugeArray,      // "*2147483647\r\n", then ":1\r\n" forever.
  kHttp,           // An HTTP/1.1 400 answer.
  kRandomBytes,    // Seeded random bytes (the first not a RESP type byte).
};

// A TCP server on 127.0.0.1 that answers every connection in one bad way, each connection on
// its own thread. The destructor stops everything.
class BadPeer {
 public:
  explicit BadPeer(Misbehaviour how) : how_(how) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        listen(listen_fd_, 64) == 0 &&
        getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~BadPeer() {
    stop_ = true;
    shutdown(listen_fd_, SHUT_RDWR);
    accept_thread_.join();
    close(listen_fd_);
    absl::MutexLock lock(&mu_);
    for (int fd : fds_) shutdown(fd, SHUT_RDWR);
    for (std::thread& t : threads_) t.join();
    for (int fd : fds_) close(fd);
  }
  int port() const { return port_; }
  std::string uri() const { return absl::StrCat("redis://127.0.0.1:", port_); }
  int connections() const { return accepted_.load(); }

 private:
  void AcceptLoop() {
    while (!stop_) {
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      ++accepted_;
      absl::MutexLock lock(&mu_);
      fds_.push_back(fd);
      threads_.emplace_back([this, fd] { Serve(fd); });
    }
  }

  // Waits for a command's bytes; false once the client is gone.
  bool AwaitCommand(int fd) {
    char buf[4096];
    while (!stop_) {
      pollfd pfd{fd, POLLIN, 0};
      if (poll(&pfd, 1, 100) <= 0) continue;
      return recv(fd, buf, sizeof(buf), 0) > 0;
    }
    return false;
  }

  // Sends `head`, then `body` again and again until the client stops reading or goes away.
  void Stream(int fd, const std::string& head, const std::string& body) {
    if (send(fd, head.data(), head.size(), MSG_NOSIGNAL) < 0) return;
    while (!stop_ && send(fd, body.data(), body.size(), MSG_NOSIGNAL) > 0) {
    }
  }

  void Serve(int fd) {
    if (!AwaitCommand(fd)) return;
    const std::string xs(64 << 10, 'x');
    switch (how_) {
      case Misbehaviour::kSilent:
        while (AwaitCommand(fd)) {
        }
        return;
      case Misbehaviour::kHugeBulkLater:
        if (send(fd, "+PONG\r\n", 7, MSG_NOSIGNAL) < 0 || !AwaitCommand(fd)) return;
        [[fallthrough]];
      case Misbehaviour::kHugeBulk:
        return Stream(fd, "$4294967296\r\n", xs);
      case Misbehaviour::kEndlessLine:
        return Stream(fd, "+", xs);
      case Misbehaviour::kHugeArray: {
        std::string ones;
        for (int i = 0; i < 4096; ++i) ones += ":1\r\n";
        return Stream(fd, "*2147483647\r\n", ones);
      }
      case Misbehaviour::kHttp:
        return Stream(fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", "");
      case Misbehaviour::kRandomBytes: {
        std::mt19937 rng(15);
        std::string bytes(64 << 10, '\0');
        for (char& c : bytes) c = static_cast<char>(rng());
        bytes[0] = '\x80';
        return Stream(fd, bytes, bytes);
      }
    }
  }

  const Misbehaviour how_;
  int listen_fd_ = -1;
  int port_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread accept_thread_;
  absl::Mutex mu_;
  std::vector<int> fds_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
};

// VmHWM (peak resident set) of a running process, in kB; -1 once it is gone.
int64_t PeakRssKb(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) != 0) continue;
    std::string digits;
    for (char c : line) {
      if (c >= '0' && c <= '9') digits.push_back(c);
    }
    int64_t kb = -1;
    return absl::SimpleAtoi(digits, &kb) ? kb : -1;
  }
  return -1;
}

struct Outcome {
  int exit_code = -1;
  absl::Duration elapsed;
  int64_t peak_rss_kb = 0;
  std::string output;
};

// The ferry CLI, whose baseline RSS is about 25 MB: anything past this held a reply.
constexpr int64_t kMaxRssKb = 200 << 10;
// The connect timeout (5 s) bounds every bad peer; the rest is process start and planning.
constexpr absl::Duration kMaxTimeToFail = absl::Seconds(12);

class BadPeerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RequireRedisServerBinary().ok()) << RequireRedisServerBinary();
    auto target = RedisServer::Start();
    ASSERT_TRUE(target.ok()) << target.status();
    target_ = *std::move(target);
  }

  // `ferry migrate --from peer --to target`, its time to fail and peak RSS measured.
  Outcome MigrateFrom(const BadPeer& peer) {
    const ScopedTempDir dir("ferry-bad-peer-");
    const std::string log = dir.path() + "/migrate.log";
    Outcome outcome;
    const absl::Time start = absl::Now();
    // Without planning retries: a silent peer times out as a stopped server does, which
    // migrate would try again (plan_retry_test); here one attempt's bounds are measured.
    auto ferry = StartFerry({"migrate", "--from", peer.uri(), "--to", target_->uri(), "--progress",
                             "none", "--plan-retry-seconds", "0"},
                            log);
    EXPECT_TRUE(ferry.ok()) << ferry.status();
    if (!ferry.ok()) return outcome;
    std::optional<int> code;
    const absl::Time deadline = start + absl::Seconds(90);
    while (!(code = ferry->TryWait()).has_value() && absl::Now() < deadline) {
      outcome.peak_rss_kb = std::max(outcome.peak_rss_kb, PeakRssKb(ferry->pid()));
      absl::SleepFor(absl::Milliseconds(10));
    }
    outcome.elapsed = absl::Now() - start;
    outcome.exit_code = code.value_or(-1);
    outcome.output = ReadFile(log);
    RecordProperty("seconds_to_fail", absl::StrCat(absl::ToDoubleSeconds(outcome.elapsed)));
    RecordProperty("peak_rss_kb", absl::StrCat(outcome.peak_rss_kb));
    std::cout << "time to fail " << outcome.elapsed << ", peak RSS " << outcome.peak_rss_kb
              << " kB: " << outcome.output << std::endl;
    return outcome;
  }

  void ExpectClearFailure(const Outcome& outcome, const std::string& says) {
    EXPECT_NE(outcome.exit_code, 0) << outcome.output;
    EXPECT_NE(outcome.exit_code, -1) << "still running after 90 s: " << outcome.output;
    EXPECT_LT(outcome.elapsed, kMaxTimeToFail) << outcome.output;
    EXPECT_GT(outcome.peak_rss_kb, 0);
    EXPECT_LT(outcome.peak_rss_kb, kMaxRssKb) << outcome.output;
    EXPECT_THAT(outcome.output, HasSubstr(says));
  }

  std::unique_ptr<RedisServer> target_;
};

TEST_F(BadPeerTest, SilentPeerFailsWithinTheConnectTimeout) {
  BadPeer peer(Misbehaviour::kSilent);
  const Outcome outcome = MigrateFrom(peer);
  ExpectClearFailure(outcome, "no reply within 5s of connecting");
  EXPECT_GE(outcome.elapsed, absl::Seconds(5)) << "the timeout is the connect timeout";
}

TEST_F(BadPeerTest, BulkClaimingFourGigabytesIsRefusedNotBuffered) {
  BadPeer peer(Misbehaviour::kHugeBulk);
  ExpectClearFailure(MigrateFrom(peer), "a bulk string of 4294967296 bytes exceeds the bound");
}

TEST_F(BadPeerTest, BulkClaimingFourGigabytesAfterAGoodHandshakeIsRefused) {
  BadPeer peer(Misbehaviour::kHugeBulkLater);
  ExpectClearFailure(MigrateFrom(peer), "exceeds the bound of 1 GiB");
}

TEST_F(BadPeerTest, LineThatNeverEndsIsAProtocolError) {
  BadPeer peer(Misbehaviour::kEndlessLine);
  ExpectClearFailure(MigrateFrom(peer), "line longer than 64 KiB");
}

TEST_F(BadPeerTest, ArrayOfTwoBillionElementsIsRefused) {
  BadPeer peer(Misbehaviour::kHugeArray);
  ExpectClearFailure(MigrateFrom(peer), "exceeds the bound");
}

TEST_F(BadPeerTest, HttpServerIsNamed) {
  BadPeer peer(Misbehaviour::kHttp);
  ExpectClearFailure(MigrateFrom(peer), "answered HTTP");
}

TEST_F(BadPeerTest, RandomBytesAreNotARedisServer) {
  BadPeer peer(Misbehaviour::kRandomBytes);
  ExpectClearFailure(MigrateFrom(peer), "does not answer as a Redis server");
}

redis::Endpoint EndpointOf(const BadPeer& peer) {
  redis::Endpoint endpoint;
  endpoint.host = "127.0.0.1";
  endpoint.port = peer.port();
  return endpoint;
}

// The same bounds through the Connection API, with the caller's own options.
TEST(BadPeerConnectionTest, SilentPeerTimesOutWithinTheConnectTimeout) {
  BadPeer peer(Misbehaviour::kSilent);
  redis::ConnectOptions options;
  options.connect_timeout = absl::Seconds(1);
  const absl::Time start = absl::Now();
  auto conn = redis::Connection::Open(EndpointOf(peer), options);
  const absl::Duration elapsed = absl::Now() - start;
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.status().code(), absl::StatusCode::kDeadlineExceeded) << conn.status();
  EXPECT_THAT(conn.status().message(), HasSubstr("no reply within 1s of connecting"));
  EXPECT_GE(elapsed, absl::Milliseconds(900));
  EXPECT_LT(elapsed, absl::Seconds(3));
}

TEST(BadPeerConnectionTest, ReplyAboveTheCallersBoundBreaksTheConnection) {
  BadPeer peer(Misbehaviour::kHugeBulkLater);
  redis::ConnectOptions options;
  options.max_reply_bytes = 1 << 20;
  auto conn = redis::Connection::Open(EndpointOf(peer), options);
  ASSERT_TRUE(conn.ok()) << conn.status();
  auto reply = conn->Command({"GET", "big"});
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kFailedPrecondition) << reply.status();
  EXPECT_THAT(reply.status().message(), HasSubstr("exceeds the bound of 1 MiB"));
  EXPECT_TRUE(conn->broken());
}

}  // namespace
}  // namespace ferry::testing
