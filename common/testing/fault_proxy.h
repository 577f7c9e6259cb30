#pragma once

// A TCP proxy that injects network faults between ferry and a real redis-server, for tests that
// must show nothing is lost when connections misbehave: everything else stays real. On a
// schedule, at random from a seed, or when the test calls Inject(), it can
// - reset connections (RST to the client, FIN to the server),
// - stall them for N seconds (no byte moves either way; new connections stall too),
// - cut them after N more bytes of replies (a close in the middle of a reply),
// - deliver replies in tiny pieces for N seconds (1 to `max_piece` bytes per segment),
// - drop the subscriber connections (those that sent SUBSCRIBE, PSUBSCRIBE or SSUBSCRIBE): what
//   live sync's watcher holds open.
// Every fault injected is logged with its time, so a failing run can be replayed from its seed.
//
// Apart from RespProxy (which makes a server look like another version and keeps one pending
// reply per command) because faults are about bytes and connections, not about what they mean:
// only the client's commands are framed, to recognise subscribers. Test support only: plain TCP
// on loopback. Thread-safe.

#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace ferry::testing {

enum class FaultKind { kReset, kStall, kCut, kTrickle, kDropSubscribers };

// "reset", "stall", "cut", "trickle", "drop-subscribers".
const char* FaultKindName(FaultKind kind);

struct Fault {
  FaultKind kind = FaultKind::kReset;
  // kStall and kTrickle: how long it lasts.
  absl::Duration duration = absl::Seconds(1);
  // kCut: how many more bytes from the server each connection delivers before it is closed.
  uint64_t bytes = 0;
  // kTrickle: the largest piece, in bytes (pieces are 1 to max_piece bytes, random).
  int max_piece = 3;
  // kReset and kCut: one open connection chosen at random rather than all of them.
  bool only_one = false;
};

// A fault `at` that long after Start().
struct ScheduledFault {
  absl::Duration at;
  Fault fault;
};

struct FaultProxyOptions {
  std::string upstream_host = "127.0.0.1";  // An IPv4 address.
  int upstream_port = 0;
  std::vector<ScheduledFault> schedule;
  // Random faults: one about every `random_every` (uniform in [0.5, 1.5] of it), of a kind from
  // `random_kinds`, with parameters drawn up to the bounds below. Zero: none.
  absl::Duration random_every = absl::ZeroDuration();
  std::vector<FaultKind> random_kinds = {FaultKind::kReset, FaultKind::kStall, FaultKind::kCut,
                                         FaultKind::kTrickle, FaultKind::kDropSubscribers};
  uint64_t seed = 1;
  absl::Duration max_stall = absl::Seconds(3);
  uint64_t max_cut_bytes = 64 << 10;
  absl::Duration max_trickle = absl::Seconds(2);
};

class FaultProxy {
 public:
  static absl::StatusOr<std::unique_ptr<FaultProxy>> Start(FaultProxyOptions options);
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;
  // Stops the fault thread and accepting, closes every connection, joins every thread.
  ~FaultProxy();

  int port() const { return port_; }
  std::string uri() const;  // redis://127.0.0.1:PORT

  // Injects `fault` now; returns how many open connections it hit (a stall or a trickle also
  // holds the connections accepted while it lasts).
  int Inject(const Fault& fault) ABSL_LOCKS_EXCLUDED(mu_);
  // A fault drawn from the seeded generator, as the random mode draws them.
  Fault DrawFault() ABSL_LOCKS_EXCLUDED(mu_);

  // One line per fault injected: "+12.345s stall 2.1s: 3 connections".
  std::vector<std::string> log() const ABSL_LOCKS_EXCLUDED(mu_);
  uint64_t faults_injected() const ABSL_LOCKS_EXCLUDED(mu_);
  int open_connections() const ABSL_LOCKS_EXCLUDED(mu_);
  // Connections accepted so far, and how many of them subscribed.
  uint64_t connections_accepted() const { return accepted_.load(); }
  int subscribers() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  class Link;
  friend class Link;

  FaultProxy(FaultProxyOptions options, int listen_fd, int port);
  void AcceptLoop() ABSL_LOCKS_EXCLUDED(mu_);
  void FaultLoop() ABSL_LOCKS_EXCLUDED(mu_);
  // Sleeps while a stall lasts (or until `closing`).
  void WaitWhileStalled(const std::atomic<bool>& closing) const;
  // 0 when replies go whole, else the largest piece of a trickle that lasts now.
  int TricklePiece() const;

  const FaultProxyOptions options_;
  const int listen_fd_;
  const int port_;
  const absl::Time start_;
  std::atomic<uint64_t> accepted_{0};
  // Until when (absl::ToUnixNanos) a stall and a trickle last, and the trickle's piece.
  std::atomic<int64_t> stall_until_ns_{0};
  std::atomic<int64_t> trickle_until_ns_{0};
  std::atomic<int> trickle_piece_{1};

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::unique_ptr<Link>> links_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> log_ ABSL_GUARDED_BY(mu_);
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);

  std::thread accept_thread_;
  std::thread fault_thread_;
};

}  // namespace ferry::testing
