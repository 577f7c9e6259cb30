#pragma once

// A RESP-aware TCP proxy in front of a real redis-server that makes it look like another
// server: another `redis_version`, Valkey's INFO fields, an INFO without keyspace lines,
// commands and options an older server lacks, and the RDB version of DUMP payloads (what a
// newer server writes, what an older one refuses to RESTORE). Only Redis 7.0 runs on the test
// machines; this lets integration tests take the code paths ferry has for Redis 4.0 ... 8.x
// and Valkey. PretendServer() fills every option for one server version.
// Test support only: plain TCP on loopback, no TLS.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "common/redis/capabilities.h"

namespace ferry::testing {

// What Redis 7.0, the server behind the proxy, writes in DUMP payloads and reads up to.
inline constexpr int kUpstreamPayloadVersion = 10;

// An argument (or subcommand) an older server does not know: a command that matches is
// answered `-<error>` by the proxy and not forwarded.
struct RefusedArgument {
  std::string command;  // Any case.
  // When set, only when argv[1] is this subcommand (any case). With an empty `token` the
  // subcommand itself is refused (XGROUP CREATECONSUMER, CLUSTER SHARDS).
  std::string subcommand;
  // An argument equal to this (any case), or, with `prefix`, starting with it ("(" for the
  // exclusive stream ranges of Redis 6.2).
  std::string token;
  bool prefix = false;
  // The arguments compared with `token`: argv[first], argv[first + step], ... up to argv[last].
  // Positions keep a key or a value that happens to spell the token from matching: SCAN's
  // options sit at 2, 4, 6...; RESTORE's after the payload, from 4.
  size_t first = 1;
  size_t step = 1;
  size_t last = SIZE_MAX;
  // The error's text without '-' and CRLF, e.g. "ERR syntax error". `$1` stands for argv[1]
  // as the client sent it, as in Redis' "Unknown subcommand ... for '%s'" replies.
  std::string error;
};

struct RespProxyOptions {
  std::string upstream_host = "127.0.0.1";  // An IPv4 address.
  int upstream_port = 0;
  // Replaces the value of `redis_version:` in every INFO reply; empty leaves it unchanged.
  std::string pretend_version;
  // INFO answers as Valkey does: `redis_version:7.2.4` (or pretend_version when set), then
  // `server_name:valkey` and `valkey_version:<this>`. Empty: no Valkey fields are added.
  std::string pretend_valkey_version;
  // `INFO everything` answers an empty bulk string, as Redis < 6 was seen to (its INFO knows
  // no section of that name; `INFO all` is still every section, as there).
  bool empty_info_everything = false;
  // INFO replies lose their `dbN:keys=...` lines, whichever sections were asked for.
  bool strip_info_keyspace = false;
  // Command names (any case) answered `-ERR unknown command ...` without being forwarded, as a
  // server that predates them would (e.g. "PEXPIRETIME" for Redis < 7.0).
  std::set<std::string> unknown_commands;
  // Arguments and subcommands answered with an error, without being forwarded; the first
  // that matches wins (PretendServer() lists what each old version refuses).
  std::vector<RefusedArgument> refused_arguments;
  // Every DUMP reply's payload gets this RDB version (and a recomputed CRC64), as a server
  // that writes it would send: 11 for Redis 7.2 / Valkey 8, 12 for 7.4 / 8.x, 80 for Valkey 9,
  // 9 for 5.0 / 6.x, 8 for 4.0. Only the footer changes; the value keeps 7.0's encoding.
  // 0: unchanged.
  int dump_payload_version = 0;
  // RESTORE as a server that writes this payload version reads: a payload it would refuse
  // (newer than this, or, on Valkey 9+, in the foreign range; Capabilities::ReadsPayload) is
  // forwarded with version 65535, so the real server refuses it, in its own order of checks
  // (syntax, TTL and BUSYKEY first) and with its own text, "ERR DUMP payload version or
  // checksum are wrong". A payload it reads that 7.0 would not (11 and up) is forwarded as
  // version 10; one with a wrong CRC is forwarded untouched. The engine is Valkey when
  // pretend_valkey_version is set. 0: unchanged.
  int restore_max_payload_version = 0;
  // HTTL, HPTTL, HEXPIRETIME and HPEXPIRETIME (`key FIELDS numfields field...`, Redis 7.4 and
  // Valkey 9) answer as those servers do, though 7.0 lacks them: each is forwarded as
  // `HMGET key field...` and its reply turned into one integer per field, -2 for nil (no such
  // field, or no such key: HMGET reads a missing key as an empty hash, as 7.4 does here) and -1
  // for a value. That is the exact answer of a 7.4 holding the same data, because data on 7.0
  // never has a field TTL; a TTL value or a lazily expired field (-2) cannot occur. An error
  // reply (WRONGTYPE, which 7.4 checks first) passes unchanged. Arguments 7.4 refuses are
  // refused with its text, in its order: fewer than 5 (its arity error, not forwarded), then,
  // after the type check (the command is forwarded as `HMGET key field` for it), FIELDS not
  // at argv[2], numfields not a positive integer, numfields not the count of the fields that
  // follow. The texts are Redis 7.4's t_hash.c; inside MULTI the EXEC reply holds HMGET's.
  bool emulate_hash_field_ttl_reads = false;
};

// Every option for a proxy in front of Redis 7.0 that answers as `engine` at `version`
// (Valkey: its own version, e.g. {9, 0}) does, so far as 7.0 can be made to:
// - INFO: redis_version (4.0.14, 5.0.14, 6.0.20, 6.2.14, 7.2.5, 7.4.1, 8.0.0; others x.y.0),
//   Valkey's fields (redis_version 7.2.4, valkey_version 7.2.5 / 8.0.1 / 9.0.0 / x.y.0), an
//   empty `INFO everything` below 6.0.
// - Commands, subcommands and options that appeared after `version` and before 7.0: refused
//   with the text the old server gives (XSETID ... ENTRIESADDED, SET ... PXAT, SCAN ... TYPE,
//   the stream commands below 5.0...).
// - DUMP payloads written, and RESTORE payloads read, as `version` does
//   (Capabilities::TablePayloadVersion).
// - Redis >= 7.4 and Valkey >= 9.0: the hash field TTL reads (emulate_hash_field_ttl_reads),
//   which ferry sends to such a source to learn that its fields have no TTL.
// What else a version newer than 7.0 added (HPEXPIRE in 7.4, ...) is not emulated: 7.0
// answers it "unknown command". That is intended: ferry must not depend on those, so a test
// through a 7.4 preset that gets "unknown command" for a 7.4-only command reveals that ferry
// sent it. Neither are 7.0's replies changed: XINFO still lists 7.0's fields, for example.
RespProxyOptions PretendServer(redis::Engine engine, std::pair<int, int> version);

// Listens on a free 127.0.0.1 port; every client connection gets its own upstream connection
// and two threads (client->upstream and upstream->client), so a pipelining client never
// deadlocks the proxy and replies keep the order of the commands. A stopped upstream makes
// clients wait; a closed upstream closes the client; a closed client closes its upstream.
// Not modelled: pub/sub, MONITOR and CLIENT REPLY OFF break the one-reply-per-command
// bookkeeping (their bytes still pass in order, but a later INFO may go unrewritten); an INFO
// or DUMP inside MULTI is not rewritten (a RESTORE is); a refused command or argument inside
// MULTI does not make EXEC fail.
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

// The `-<error>\r\n` reply of the first of `refused` that matches `argv` (whose command name,
// upper-cased, is `upper_name`); nullopt when none does.
std::optional<std::string> RefusalReply(absl::string_view upper_name,
                                        absl::Span<const absl::string_view> argv,
                                        absl::Span<const RefusedArgument> refused);

// The payload version a RESTORE with `payload` must be forwarded with, by
// restore_max_payload_version; nullopt: forward it unchanged.
std::optional<int> RestoreForwardVersion(absl::string_view payload,
                                         const RespProxyOptions& options);

// Sets the version of the payload whose bytes start at `payload` (`size` of them, at least
// the 10-byte footer) and recomputes its CRC64, in place: the length does not change, so a
// command or a reply holding it is patched without being re-encoded.
void SetPayloadVersionInPlace(char* payload, size_t size, int version);

// Appends a DUMP reply (RESP bytes) to `out` with its payload's version set to `version`.
// Nil, errors and bulk strings too short to be payloads are appended unchanged.
void AppendDumpReply(absl::string_view reply, int version, std::string* out);

// True for the commands emulate_hash_field_ttl_reads covers: HTTL, HPTTL, HEXPIRETIME,
// HPEXPIRETIME.
bool IsHashFieldTtlRead(absl::string_view upper_name);

// What the proxy does with one of those (RespProxyOptions::emulate_hash_field_ttl_reads).
struct FieldTtlRead {
  // When not empty, the whole reply (RESP bytes), sent without forwarding anything.
  std::string reply;
  // Otherwise the HMGET command (RESP bytes) to forward in its place,
  std::string forward;
  // and, when not empty, the reply (RESP bytes) to give unless HMGET's is an error.
  std::string argument_error;
};
FieldTtlRead RewriteFieldTtlRead(absl::Span<const absl::string_view> argv);

// The reply to a hash field TTL read, from the reply to the HMGET it was forwarded as.
std::string FieldTtlReply(absl::string_view hmget_reply, absl::string_view argument_error);

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
