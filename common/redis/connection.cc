#include "common/redis/connection.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/base/status_macros.h"
#include "common/redis/errors.h"
#include "common/redis/reply_reader.h"

namespace ferry::redis {
namespace {

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
struct SslDeleter {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};

std::string OpenSslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown TLS error" : out;
}

bool IsIpLiteral(const std::string& host) {
  in6_addr addr6;
  in_addr addr4;
  return inet_pton(AF_INET, host.c_str(), &addr4) == 1 ||
         inet_pton(AF_INET6, host.c_str(), &addr6) == 1;
}

int TimeoutMs(absl::Duration d) { return static_cast<int>(absl::ToInt64Milliseconds(d)); }

// How long the handshake (TLS, AUTH, the first reply) may wait for one read or write.
absl::Duration HandshakeTimeout(const ConnectOptions& options) {
  return std::min(options.connect_timeout, options.io_timeout);
}

void SetIoTimeout(int fd, absl::Duration timeout) {
  timeval tv = absl::ToTimeval(timeout);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

// Connects a non-blocking socket within `timeout`, then makes it blocking with the handshake's
// I/O timeouts (Open sets io_timeout once the handshake is done).
absl::StatusOr<int> ConnectTcp(const Endpoint& endpoint, const ConnectOptions& options) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  const std::string port = std::to_string(endpoint.port);
  if (int rc = getaddrinfo(endpoint.host.c_str(), port.c_str(), &hints, &result); rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot resolve ", endpoint.host, ": ", gai_strerror(rc)));
  }
  std::string last_error = "no address";
  int fd = -1;
  for (addrinfo* ai = result; ai != nullptr && fd < 0; ai = ai->ai_next) {
    int s = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0) continue;
    int rc = connect(s, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd pfd{s, POLLOUT, 0};
      rc = poll(&pfd, 1, TimeoutMs(options.connect_timeout));
      if (rc == 0) {
        last_error = "connect timed out";
        close(s);
        continue;
      }
      int err = 0;
      socklen_t len = sizeof(err);
      getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc != 0) {
      last_error = std::strerror(errno);
      close(s);
      continue;
    }
    fd = s;
  }
  freeaddrinfo(result);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot connect to ", endpoint.Address(), ": ", last_error));
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
  if (options.socket_buffer_bytes > 0) {
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &options.socket_buffer_bytes, sizeof(int));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &options.socket_buffer_bytes, sizeof(int));
  }
  SetIoTimeout(fd, HandshakeTimeout(options));
  return fd;
}

}  // namespace

// The byte stream under a connection: a TCP socket, optionally wrapped in TLS.
struct Connection::Transport {
  int fd = -1;
  std::unique_ptr<SSL_CTX, SslCtxDeleter> ctx;
  std::unique_ptr<SSL, SslDeleter> ssl;
  std::string address;

  ~Transport() {
    if (ssl) SSL_shutdown(ssl.get());
    ssl.reset();
    if (fd >= 0) close(fd);
  }

  absl::Status IoError(const char* what, int err) const {
    if (err == EAGAIN || err == EWOULDBLOCK) {
      return absl::DeadlineExceededError(absl::StrCat(what, " ", address, " timed out"));
    }
    return absl::UnavailableError(
        absl::StrCat(what, " ", address, " failed: ", err ? std::strerror(err) : "closed"));
  }

  absl::Status StartTls(const Endpoint& endpoint) {
    ctx.reset(SSL_CTX_new(TLS_client_method()));
    if (!ctx) return absl::InternalError("TLS: " + OpenSslErrors());
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
    if (endpoint.verify_peer) {
      SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
      int ok = endpoint.ca_file.empty()
                   ? SSL_CTX_set_default_verify_paths(ctx.get())
                   : SSL_CTX_load_verify_locations(ctx.get(), endpoint.ca_file.c_str(), nullptr);
      if (ok != 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("cannot load CA file ", endpoint.ca_file, ": ", OpenSslErrors()));
      }
    } else {
      SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
    }
    ssl.reset(SSL_new(ctx.get()));
    if (!ssl) return absl::InternalError("TLS: " + OpenSslErrors());
    const std::string& name =
        endpoint.tls_server_name.empty() ? endpoint.host : endpoint.tls_server_name;
    const bool ip = IsIpLiteral(name);
    if (!ip) SSL_set_tlsext_host_name(ssl.get(), name.c_str());
    if (endpoint.verify_peer) {
      X509_VERIFY_PARAM* param = SSL_get0_param(ssl.get());
      int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                  : X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0);
      if (ok != 1) return absl::InternalError("TLS: cannot set the expected host name");
    }
    SSL_set_fd(ssl.get(), fd);
    ERR_clear_error();
    if (SSL_connect(ssl.get()) != 1) {
      long verify = SSL_get_verify_result(ssl.get());
      if (verify != X509_V_OK) {
        return absl::UnavailableError(absl::StrCat(
            "TLS handshake with ", address,
            " failed: certificate verification: ", X509_verify_cert_error_string(verify),
            " (give the CA that signed the server's certificate, or turn verification off)"));
      }
      return absl::UnavailableError(
          absl::StrCat("TLS handshake with ", address, " failed: ", OpenSslErrors()));
    }
    return absl::OkStatus();
  }

  absl::Status WriteAll(const char* data, size_t size) {
    while (size > 0) {
      ssize_t n;
      if (ssl) {
        n = SSL_write(ssl.get(), data, static_cast<int>(std::min<size_t>(size, 1 << 30)));
        if (n <= 0)
          return IoError("write to", SSL_get_error(ssl.get(), n) == SSL_ERROR_SYSCALL ? errno : 0);
      } else {
        n = send(fd, data, size, MSG_NOSIGNAL);
        if (n < 0) {
          if (errno == EINTR) continue;
          return IoError("write to", errno);
        }
      }
      data += n;
      size -= static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }

  // Reads at least one byte.
  absl::StatusOr<size_t> ReadSome(char* buf, size_t cap) {
    for (;;) {
      ssize_t n;
      if (ssl) {
        n = SSL_read(ssl.get(), buf, static_cast<int>(cap));
        if (n <= 0) {
          int err = SSL_get_error(ssl.get(), n);
          if (err == SSL_ERROR_ZERO_RETURN) return IoError("read from", 0);
          return IoError("read from", err == SSL_ERROR_SYSCALL || err == SSL_ERROR_WANT_READ
                                          ? (errno ? errno : EAGAIN)
                                          : 0);
        }
      } else {
        n = recv(fd, buf, cap, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return IoError("read from", errno);
        if (n == 0) return IoError("read from", 0);
      }
      return static_cast<size_t>(n);
    }
  }
};

// ---- ReplyView / Reply ----

ReplyView::Type ReplyView::type() const {
  if (reply_ == nullptr) return Type::kNil;
  switch (reply_->type) {
    case REDIS_REPLY_STRING:
      return Type::kString;
    case REDIS_REPLY_ARRAY:
      return Type::kArray;
    case REDIS_REPLY_INTEGER:
      return Type::kInteger;
    case REDIS_REPLY_STATUS:
      return Type::kStatus;
    case REDIS_REPLY_ERROR:
      return Type::kError;
    default:
      return Type::kNil;
  }
}

absl::string_view ReplyView::str() const {
  if (reply_ == nullptr || reply_->str == nullptr) return {};
  return absl::string_view(reply_->str, reply_->len);
}

int64_t ReplyView::integer() const {
  if (reply_ == nullptr) return 0;
  if (reply_->type == REDIS_REPLY_INTEGER) return reply_->integer;
  int64_t value = 0;
  if (reply_->str != nullptr) (void)absl::SimpleAtoi(str(), &value);
  return value;
}

size_t ReplyView::size() const {
  return reply_ != nullptr && reply_->type == REDIS_REPLY_ARRAY ? reply_->elements : 0;
}

ReplyView ReplyView::element(size_t i) const {
  return ReplyView(i < size() ? reply_->element[i] : nullptr);
}

void ReplyDeleter::operator()(redisReply* reply) const { freeReplyObject(reply); }

// ---- Connection ----

Connection::Connection(Endpoint endpoint, std::unique_ptr<Transport> transport,
                       uint64_t max_reply_bytes)
    : endpoint_(std::move(endpoint)),
      transport_(std::move(transport)),
      reader_(std::make_unique<ReplyReader>(max_reply_bytes)) {}

// Defined here, where Transport is complete.
Connection::Connection(Connection&& other) noexcept = default;
Connection& Connection::operator=(Connection&& other) noexcept = default;
Connection::~Connection() = default;

absl::StatusOr<Connection> Connection::Open(const Endpoint& endpoint,
                                            const ConnectOptions& options) {
  auto transport = std::make_unique<Transport>();
  transport->address = endpoint.Address();
  FERRY_ASSIGN_OR_RETURN(transport->fd, ConnectTcp(endpoint, options));
  if (endpoint.tls) FERRY_RETURN_IF_ERROR(transport->StartTls(endpoint));
  Connection conn(endpoint, std::move(transport), kHandshakeReplyBytes);
  conn.observer_ = options.observer;
  FERRY_RETURN_IF_ERROR(conn.Handshake(options));
  conn.reader_->set_max_reply_bytes(options.max_reply_bytes);
  SetIoTimeout(conn.transport_->fd, options.io_timeout);
  return conn;
}

void Connection::Append(absl::Span<const absl::string_view> argv) {
  // RESP: *<argc>\r\n then $<len>\r\n<bytes>\r\n per argument. On the hot path of every copy:
  // the exact size is reserved once and written through a pointer.
  constexpr size_t kHeader = 1 + 20 + 2;  // Marker, up to 20 digits, CRLF.
  size_t total = kHeader;
  for (absl::string_view arg : argv) total += kHeader + arg.size() + 2;
  const size_t old_size = out_.size();
  out_.resize(old_size + total);
  char* p = out_.data() + old_size;
  *p++ = '*';
  p = absl::numbers_internal::FastIntToBuffer(static_cast<uint64_t>(argv.size()), p);
  *p++ = '\r';
  *p++ = '\n';
  for (absl::string_view arg : argv) {
    *p++ = '$';
    p = absl::numbers_internal::FastIntToBuffer(static_cast<uint64_t>(arg.size()), p);
    *p++ = '\r';
    *p++ = '\n';
    if (!arg.empty()) std::memcpy(p, arg.data(), arg.size());
    p += arg.size();
    *p++ = '\r';
    *p++ = '\n';
  }
  out_.resize(static_cast<size_t>(p - out_.data()));
  ++pending_;
  ++unsent_;
  // RESP2 takes no AUTH on a subscribed connection: its owner reconnects instead.
  if (endpoint_.iam.enabled && !argv.empty() && absl::EndsWithIgnoreCase(argv[0], "SUBSCRIBE")) {
    next_reauth_ = absl::InfiniteFuture();
  }
}

absl::Status Connection::Fail(absl::Status status) {
  broken_ = true;
  return status;
}

absl::Status Connection::Flush() {
  if (broken_) return absl::UnavailableError("connection to " + endpoint_.Address() + " is broken");
  if (out_.empty()) return absl::OkStatus();
  if (endpoint_.iam.enabled && absl::Now() >= next_reauth_) QueueReauth();
  if (observer_ != nullptr && !round_trip_timed_) {
    round_trip_start_ = absl::Now();
    round_trip_timed_ = true;
  }
  absl::Status status = transport_->WriteAll(out_.data(), out_.size());
  if (!status.ok()) return Fail(std::move(status));
  out_.clear();
  unsent_ = 0;
  if (out_.capacity() > (8u << 20)) out_.shrink_to_fit();
  return absl::OkStatus();
}

absl::Status Connection::FillReader() {
  // hiredis moves the unread rest of its buffer each time 1 KiB of it has been parsed, so it
  // gets small pieces (the copy stays short) while the socket is read in big ones (few system
  // calls). Feeding a whole big read at once makes parsing quadratic.
  constexpr size_t kReadSize = 256 << 10;
  constexpr size_t kFeedSize = 4 << 10;
  if (in_pos_ == in_len_) {
    if (in_ == nullptr) in_.reset(new char[kReadSize]);
    in_pos_ = in_len_ = 0;
    FERRY_ASSIGN_OR_RETURN(in_len_, transport_->ReadSome(in_.get(), kReadSize));
  }
  const size_t piece = std::min(kFeedSize, in_len_ - in_pos_);
  FERRY_RETURN_IF_ERROR(reader_->Feed(in_.get() + in_pos_, piece));
  in_pos_ += piece;
  return absl::OkStatus();
}

absl::StatusOr<redisReply*> Connection::NextParsed() {
  absl::StatusOr<redisReply*> reply = reader_->Next();
  if (reply.ok()) return reply;
  const bool protocol = reply.status().code() == absl::StatusCode::kUnavailable;
  return Fail(absl::Status(reply.status().code(),
                           absl::StrCat(protocol ? "protocol error from " : "reply from ",
                                        endpoint_.Address(), ": ", reply.status().message())));
}

absl::StatusOr<Reply> Connection::ReadNextReply() {
  for (;;) {
    FERRY_ASSIGN_OR_RETURN(redisReply * reply, NextParsed());
    if (reply != nullptr) return Reply(reply);
    absl::Status status = FillReader();
    if (!status.ok()) return Fail(std::move(status));
  }
}

void Connection::EndRoundTrip() {
  if (!round_trip_timed_ || pending_ != 0) return;
  round_trip_timed_ = false;
  observer_->RoundTrip(absl::Now() - round_trip_start_);
}

absl::StatusOr<Reply> Connection::ReadReply() {
  if (broken_) return absl::UnavailableError("connection to " + endpoint_.Address() + " is broken");
  if (!out_.empty()) FERRY_RETURN_IF_ERROR(Flush());
  if (reauth_pending_ && replies_before_reauth_ == 0) FERRY_RETURN_IF_ERROR(ReadReauthReply());
  FERRY_ASSIGN_OR_RETURN(Reply reply, ReadNextReply());
  if (pending_ > 0) --pending_;
  if (reauth_pending_ && replies_before_reauth_ > 0) --replies_before_reauth_;
  EndRoundTrip();
  return reply;
}

absl::StatusOr<std::optional<Reply>> Connection::ReadReplyWithin(absl::Duration timeout) {
  if (broken_) return absl::UnavailableError("connection to " + endpoint_.Address() + " is broken");
  if (!out_.empty()) FERRY_RETURN_IF_ERROR(Flush());
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    FERRY_ASSIGN_OR_RETURN(redisReply * reply, NextParsed());
    if (reply != nullptr) {
      if (pending_ > 0) --pending_;
      EndRoundTrip();
      return std::optional<Reply>(Reply(reply));
    }
    // Nothing buffered: wait for the socket (TLS may hold decrypted bytes already).
    if (in_pos_ == in_len_ && !(transport_->ssl && SSL_pending(transport_->ssl.get()) > 0)) {
      pollfd pfd{transport_->fd, POLLIN, 0};
      const int64_t wait_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
      const int rc = poll(&pfd, 1, static_cast<int>(std::max<int64_t>(0, wait_ms)));
      if (rc < 0 && errno != EINTR) {
        return Fail(absl::UnavailableError(
            absl::StrCat("poll ", endpoint_.Address(), " failed: ", std::strerror(errno))));
      }
      if (rc <= 0) return std::optional<Reply>();
    }
    absl::Status status = FillReader();
    if (!status.ok()) return Fail(std::move(status));
  }
}

absl::StatusOr<Reply> Connection::Command(absl::Span<const absl::string_view> argv) {
  if (broken_) return absl::UnavailableError("connection to " + endpoint_.Address() + " is broken");
  // Replies of earlier pipelined commands are not ours to take.
  if (pending_ != 0) {
    return absl::FailedPreconditionError("Command() with pipelined replies still pending");
  }
  Append(argv);
  FERRY_ASSIGN_OR_RETURN(Reply reply, ReadReply());
  if (reply.is_error()) {
    return Annotate(StatusFromReplyError(reply.str()),
                    absl::AsciiStrToUpper(argv.empty() ? "" : argv[0]));
  }
  return reply;
}

absl::Status Connection::Select(int db) {
  if (db == db_) return absl::OkStatus();
  const std::string arg = std::to_string(db);
  FERRY_RETURN_IF_ERROR(Command({"SELECT", arg}).status());
  db_ = db;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Reply>> RunPipeline(Connection& connection,
                                               const std::vector<std::vector<std::string>>& cmds) {
  std::vector<absl::string_view> argv;
  for (const auto& cmd : cmds) {
    argv.assign(cmd.begin(), cmd.end());
    connection.Append(argv);
  }
  FERRY_RETURN_IF_ERROR(connection.Flush());
  std::vector<Reply> replies;
  replies.reserve(cmds.size());
  for (size_t i = 0; i < cmds.size(); ++i) {
    FERRY_ASSIGN_OR_RETURN(Reply reply, connection.ReadReply());
    replies.push_back(std::move(reply));
  }
  return replies;
}

std::pair<int, int> MajorMinor(absl::string_view version) {
  std::pair<absl::string_view, absl::string_view> parts = absl::StrSplit(version, '.');
  int major = 0;
  int minor = 0;
  (void)absl::SimpleAtoi(parts.first, &major);
  (void)absl::SimpleAtoi(parts.second.substr(0, parts.second.find('.')), &minor);
  return {major, minor};
}

std::string InfoField(absl::string_view info, absl::string_view field) {
  for (absl::string_view line : absl::StrSplit(info, '\n')) {
    line = absl::StripTrailingAsciiWhitespace(line);
    if (line.size() > field.size() && line[field.size()] == ':' &&
        line.substr(0, field.size()) == field) {
      return std::string(line.substr(field.size() + 1));
    }
  }
  return "";
}

}  // namespace ferry::redis
