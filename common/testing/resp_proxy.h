#pragma once

// A RESP-aware TCP proxy in front of a real redis-server that makes it look like another
// server: another `redis_version`, Valkey's INFO fields, an INFO without keyspace lines, or
// commands an older server lacks. Only Redis 7.0 runs on the test machines; this lets
// integration tests take the code paths ferry has for Redis 4.0 ... 8.x and Valkey.
// Test support only: plain TCP on loopback, no TLS.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"

namespace ferry::testing {

struct RespProxyOptions {
  std::string upstream_host = "127.0.0.1";  // An IPv4 address.
  int upstream_port = 0;
  // Replaces the value of `redis_version:` in every INFO reply; empty leaves it unchanged.
  std::string pretend_version;
  // INFO answers as Valkey does: `redis_version:7.2.4` (or pretend_version when set), then
  // `server_name:valkey` and `valkey_version:<this>`. Empty: no Valkey fields are added.
  std::string pretend_valkey_version;
  // `INFO everything` and `INFO all` answer an empty bulk string, as Redis < 6 was seen to.
  bool empty_info_everything = false;
  // INFO replies lose their `dbN:keys=...` lines, whichever sections were asked for.
  bool strip_info_keyspace = false;
  // Command names (any case) answered `-ERR unknown command ...` without being forwarded, as a
  // server that predates them would (e.g. "PEXPIRETIME" for Redis < 7.0).
  std::set<std::string> unknown_commands;
};

// Listens on a free 127.0.0.1 port; every client connection gets its own upstream connection
// and two threads (client->upstream and upstream->client), so a pipelining client never
// deadlocks the proxy and replies keep the order of the commands. A stopped upstream makes
// clients wait; a closed upstream closes the client; a closed client closes its upstream.
// Not modelled: pub/sub, MONITOR and CLIENT REPLY OFF break the one-reply-per-command
// bookkeeping (their bytes still pass in order, but a later INFO may go unrewritten); an INFO
// inside MULTI is not rewritten; a refused command inside MULTI does not make EXEC fail.
// Thread-safe.
class RespProxy {
 public:
  static absl::StatusOr<std::unique_ptr<RespProxy>> Start(RespProxyOptions options);

  RespProxy(const RespProxy&) = delete;
  RespProxy& operator=(const RespProxy&) = delete;
  // Stops accepting, closes every connection and joins every thread.
  ~RespProxy();

  std::string host() const { return "127.0.0.1"; }
  int port() const { return port_; }
  const RespProxyOptions& options() const { return options_; }

  // How many commands named `upper_name` (e.g. "INFO") clients sent, forwarded or refused.
  // Counted when the command is read, so before its reply reaches the client.
  uint64_t commands_seen(absl::string_view upper_name) const ABSL_LOCKS_EXCLUDED(counts_mu_);

 private:
  class ClientConnection;

  RespProxy(RespProxyOptions options, int listen_fd, int port);
  void AcceptLoop() ABSL_LOCKS_EXCLUDED(connections_mu_);
  void CountCommand(absl::string_view name) ABSL_LOCKS_EXCLUDED(counts_mu_);

  const RespProxyOptions options_;
  const int listen_fd_;
  const int port_;

  absl::Mutex connections_mu_;
  bool stopping_ ABSL_GUARDED_BY(connections_mu_) = false;
  // Open connections, and finished ones until the next accept reaps them.
  std::vector<std::unique_ptr<ClientConnection>> connections_ ABSL_GUARDED_BY(connections_mu_);

  mutable absl::Mutex counts_mu_;
  std::map<std::string, uint64_t, std::less<>> counts_ ABSL_GUARDED_BY(counts_mu_);

  std::thread accept_thread_;  // Last: started once everything above exists.
};

// ---- The pure parts, public for their unit tests.

// Cuts one direction of a RESP byte stream into complete messages: replies (RESP2 and RESP3)
// or commands (arrays, or inline lines when `inline_commands`). Resumable: a message that
// arrives in many reads is scanned once, so a 1M-element SCAN reply costs O(size).
// Not thread-safe.
class RespFramer {
 public:
  explicit RespFramer(bool inline_commands) : inline_commands_(inline_commands) {}

  // Adds bytes read from the socket. Invalidates the views Next() returned.
  void Append(absl::string_view bytes);
  // The next complete message (its exact bytes), or nullopt until more bytes arrive.
  // INVALID_ARGUMENT on a protocol error, after which the stream cannot be resynchronised.
  absl::StatusOr<std::optional<absl::string_view>> Next();

 private:
  // Advances pos_ over complete elements; true when the message that starts at start_ is done.
  absl::StatusOr<bool> Scan();
  absl::StatusOr<bool> ScanInline();

  const bool inline_commands_;
  std::string buf_;
  size_t start_ = 0;  // First byte of the message being scanned.
  size_t pos_ = 0;    // First byte not yet scanned.
  // Elements still expected by each open aggregate, innermost last.
  std::vector<int64_t> open_;
};

// The argv of one complete command message from RespFramer (views into it): an array of bulk
// strings, or an inline line split on blanks. Empty for an empty line or `*0`, which Redis
// ignores without a reply. INVALID_ARGUMENT for an array holding anything but bulk strings.
absl::StatusOr<std::vector<absl::string_view>> ParseCommand(absl::string_view message);

// The `-ERR unknown command ...` reply (RESP bytes) Redis 7 gives for `argv`.
std::string UnknownCommandReply(absl::Span<const absl::string_view> argv);

// True when RewriteInfoReply can change anything with these options.
bool RewritesInfo(const RespProxyOptions& options);

// INFO text (`# Server\r\nredis_version:7.0.15\r\n...`) as the pretended server would write it.
std::string RewriteInfoText(absl::string_view info, const RespProxyOptions& options);

// One complete INFO reply (RESP bytes: a bulk or RESP3 verbatim string) for a command with
// `sections` (its arguments) as the pretended server would send it. Errors and anything else
// pass unchanged.
std::string RewriteInfoReply(absl::string_view reply, absl::Span<const std::string> sections,
                             const RespProxyOptions& options);

}  // namespace ferry::testing
