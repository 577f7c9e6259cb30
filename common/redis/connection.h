#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/redis/endpoint.h"
#include "common/redis/io_observer.h"

struct redisReply;  // hiredis; only connection.cc sees its definition.

namespace ferry::redis {

class ReplyReader;  // reply_reader.h

// A non-owning look at one reply (or one element of an array reply).
class ReplyView {
 public:
  enum class Type { kString, kArray, kInteger, kNil, kStatus, kError };

  explicit ReplyView(const redisReply* reply) : reply_(reply) {}
  ReplyView(const ReplyView&) = default;
  ReplyView& operator=(const ReplyView&) = default;
  // A moved-from view sees nothing, so a moved-from Reply never looks at the reply it handed on.
  ReplyView(ReplyView&& other) noexcept : reply_(std::exchange(other.reply_, nullptr)) {}
  ReplyView& operator=(ReplyView&& other) noexcept {
    reply_ = std::exchange(other.reply_, nullptr);
    return *this;
  }

  Type type() const;
  bool is_nil() const { return type() == Type::kNil; }
  bool is_error() const { return type() == Type::kError; }
  bool is_array() const { return type() == Type::kArray; }
  bool is_integer() const { return type() == Type::kInteger; }
  // Bulk string, status or error text (binary safe). Empty for other types.
  absl::string_view str() const;
  int64_t integer() const;
  // Number of elements of an array reply; 0 otherwise.
  size_t size() const;
  ReplyView element(size_t i) const;

 protected:
  const redisReply* reply_;
};

// Frees a hiredis reply (freeReplyObject); for the unique_ptr that owns it.
struct ReplyDeleter {
  void operator()(redisReply* reply) const;
};

// Owns one top-level reply: the view reads it, `owned_` frees it. Move-only.
class Reply : public ReplyView {
 public:
  Reply() : ReplyView(nullptr) {}
  explicit Reply(redisReply* reply) : ReplyView(reply), owned_(reply) {}

 private:
  std::unique_ptr<redisReply, ReplyDeleter> owned_;
};

struct ConnectOptions {
  // Bounds the TCP connect, and then (with io_timeout, whichever is shorter) the whole
  // handshake: TLS, AUTH, CLIENT SETNAME, SELECT, or a PING when none of those is sent. A peer
  // that accepts and never answers fails within it, not within io_timeout.
  absl::Duration connect_timeout = absl::Seconds(5);
  // Longest wait for one read or write; a DUMP of a huge key must fit in it.
  absl::Duration io_timeout = absl::Seconds(60);
  // The largest reply one read may hold (ReplyReader: its bytes plus 64 per element); a larger
  // one breaks the connection with FAILED_PRECONDITION before it is buffered. The handshake's
  // replies are bounded far lower (kHandshakeReplyBytes).
  uint64_t max_reply_bytes = uint64_t{1} << 30;
  // SO_SNDBUF/SO_RCVBUF; pipelines of thousands of commands like big buffers.
  int socket_buffer_bytes = 4 << 20;
  // Sent as CLIENT SETNAME when not empty (failures ignored: some servers forbid it).
  std::string client_name;
  // Told each round trip of the connections opened with these options (and the retries of a
  // Router's); null: nobody. Not owned: must outlive the connections.
  IoObserver* observer = nullptr;
};

// One connection to a Redis server over TCP or TLS. Commands are formatted into an output
// buffer (Append), sent together (Flush) and their replies read in order (ReadReply): a
// pipeline. Error replies are data, returned in their slot. Transport failures are UNAVAILABLE
// (or DEADLINE_EXCEEDED), and so are bytes that are not RESP; a reply above
// ConnectOptions::max_reply_bytes is FAILED_PRECONDITION. After any of them the connection is
// broken and must be reopened.
// With IAM authentication (Endpoint::iam) the first Flush after each `reauth_interval` sends
// `AUTH user <fresh token>` ahead of the commands it flushes; ReadReply reads that reply itself,
// in its place, and a refused re-AUTH breaks the connection (UNAVAILABLE: reopen it). A
// connection that has sent (P|S)SUBSCRIBE is never re-AUTHed (RESP2 refuses AUTH there).
// Not thread-safe; move-only (a moved-from connection may only be destroyed or assigned to).
class Connection {
 public:
  // Connects, completes TLS (verifying the certificate and host name unless the endpoint says
  // otherwise), AUTHs (with a signed IAM token when the endpoint says so) and SELECTs the
  // endpoint's db when it has one; with none of those (nor a client name) it PINGs, so that
  // every connection has had one reply, within the handshake's timeout, before it is
  // returned. A peer whose first reply is not RESP is FAILED_PRECONDITION ("not a Redis
  // server"); one that sends nothing in time is DEADLINE_EXCEEDED.
  static absl::StatusOr<Connection> Open(const Endpoint& endpoint,
                                         const ConnectOptions& options = {});

  Connection(Connection&& other) noexcept;
  Connection& operator=(Connection&& other) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Queues one command (binary-safe argv) in the output buffer.
  void Append(absl::Span<const absl::string_view> argv);
  void Append(std::initializer_list<absl::string_view> argv) {
    Append(absl::MakeConstSpan(argv.begin(), argv.size()));
  }
  // Sends the output buffer.
  absl::Status Flush();
  // Reads the next reply. Replies not yet read are pending(): Append/Flush/ReadReply keep count.
  absl::StatusOr<Reply> ReadReply();
  size_t pending() const { return pending_; }
  // Subscribers (pub/sub pushes, no command in flight): the next reply if one arrives within
  // `timeout` (zero: only what has arrived already), else nullopt; a partial reply stays
  // buffered for the next call. Not for connections with an IAM re-AUTH reply outstanding.
  absl::StatusOr<std::optional<Reply>> ReadReplyWithin(absl::Duration timeout);
  size_t buffered_bytes() const { return out_.size(); }

  // Sends one command and reads its reply; an error reply becomes a status
  // (StatusFromReplyError) prefixed with the command name.
  absl::StatusOr<Reply> Command(absl::Span<const absl::string_view> argv);
  absl::StatusOr<Reply> Command(std::initializer_list<absl::string_view> argv) {
    return Command(absl::MakeConstSpan(argv.begin(), argv.size()));
  }

  // SELECT db (no round trip when already there).
  absl::Status Select(int db);
  int db() const { return db_; }
  const Endpoint& endpoint() const { return endpoint_; }
  bool broken() const { return broken_; }

 private:
  struct Transport;
  Connection(Endpoint endpoint, std::unique_ptr<Transport> transport, uint64_t max_reply_bytes);
  // The rest of Open() once the transport is up (connection_handshake.cc): AUTH, SETNAME,
  // SELECT or PING, with what their failure means for a peer that never answered yet.
  absl::Status Handshake(const ConnectOptions& options);
  absl::Status HandshakeCommands(const ConnectOptions& options);
  absl::Status Fail(absl::Status status);
  absl::Status FillReader();
  // The AUTH password: the endpoint's, or with IAM a token signed now (and the re-AUTH clock
  // started).
  absl::StatusOr<std::string> LoginPassword();
  // The reader's next reply (null until more bytes arrive); its errors break the connection.
  absl::StatusOr<redisReply*> NextParsed();
  // The next reply on the wire, whoever asked for it.
  absl::StatusOr<Reply> ReadNextReply();
  // IAM: puts `AUTH user <token>` in front of the unsent commands (or, when no token can be
  // signed now, logs why and tries again later: the connection stays logged in meanwhile).
  void QueueReauth();
  absl::Status ReadReauthReply();
  // Tells the observer the round trip that ends when no reply is pending.
  void EndRoundTrip();

  Endpoint endpoint_;
  std::unique_ptr<Transport> transport_;
  std::unique_ptr<ReplyReader> reader_;
  std::string out_;
  std::unique_ptr<char[]> in_;  // Bytes read from the socket: [in_pos_, in_len_) not yet fed.
  size_t in_len_ = 0;
  size_t in_pos_ = 0;
  size_t pending_ = 0;
  size_t unsent_ = 0;  // Commands in out_ (all of them pending).
  int db_ = 0;
  bool broken_ = false;
  // IAM re-AUTH: when the next one is due; whether its reply is still to be read, and how many
  // of the caller's replies come before it.
  absl::Time next_reauth_ = absl::InfiniteFuture();
  bool reauth_pending_ = false;
  size_t replies_before_reauth_ = 0;
  // ConnectOptions::observer, and when the pipeline in flight was sent (round_trip_timed_).
  IoObserver* observer_ = nullptr;
  absl::Time round_trip_start_;
  bool round_trip_timed_ = false;
};

// The bound on each reply during Open()'s handshake: AUTH, SETNAME, SELECT and PING answer a
// line, an error or (RESP3 servers' HELLO aside, which ferry does not send) nothing bigger.
inline constexpr uint64_t kHandshakeReplyBytes = 64 << 10;

// Convenience: Append every command, Flush, read every reply (errors stay in their slots).
absl::StatusOr<std::vector<Reply>> RunPipeline(Connection& connection,
                                               const std::vector<std::vector<std::string>>& cmds);

// Parses `INFO` text into the value of `field` in it (empty when absent).
std::string InfoField(absl::string_view info, absl::string_view field);

// A server version ("7.4.1") as {major, minor}; missing or unreadable parts are 0. The patch
// level never changes the RDB format, so it is not compared anywhere.
std::pair<int, int> MajorMinor(absl::string_view version);

}  // namespace ferry::redis
