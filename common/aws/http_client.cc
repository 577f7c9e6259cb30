#include "common/aws/http_client.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/status_macros.h"

namespace ferry::aws {
namespace {

constexpr size_t kMaxResponseBytes = 1 << 20;

struct HostPort {
  std::string host;
  std::string port = "80";
};

absl::StatusOr<HostPort> ParseBaseUrl(absl::string_view url) {
  if (!absl::ConsumePrefix(&url, "http://")) {
    return absl::InvalidArgumentError(absl::StrCat("want an http:// URL, not \"", url, "\""));
  }
  url = url.substr(0, url.find('/'));
  HostPort out;
  absl::string_view port;
  if (absl::StartsWith(url, "[")) {
    const size_t close = url.find(']');
    if (close == absl::string_view::npos) return absl::InvalidArgumentError("unclosed '['");
    out.host = std::string(url.substr(1, close - 1));
    port = url.substr(close + 1);
  } else {
    const size_t colon = url.find(':');
    out.host = std::string(url.substr(0, colon));
    if (colon != absl::string_view::npos) port = url.substr(colon);
  }
  if (absl::ConsumePrefix(&port, ":")) out.port = std::string(port);
  int number = 0;
  if (out.host.empty() || !absl::SimpleAtoi(out.port, &number) || number < 1 || number > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("bad address in \"", url, "\""));
  }
  return out;
}

// A connected blocking socket whose reads and writes time out after `timeout`.
absl::StatusOr<int> Connect(const HostPort& address, absl::Duration timeout) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  if (int rc = getaddrinfo(address.host.c_str(), address.port.c_str(), &hints, &result); rc) {
    return absl::UnavailableError(
        absl::StrCat("cannot resolve ", address.host, ": ", gai_strerror(rc)));
  }
  std::string error = "no address";
  int fd = -1;
  for (addrinfo* ai = result; ai != nullptr && fd < 0; ai = ai->ai_next) {
    int s = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0) continue;
    int rc = connect(s, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd pfd{s, POLLOUT, 0};
      rc = poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
      int err = rc == 0 ? ETIMEDOUT : 0;
      socklen_t len = sizeof(err);
      if (rc > 0) getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc != 0) {
      error = std::strerror(errno);
      close(s);
      continue;
    }
    fd = s;
  }
  freeaddrinfo(result);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot connect: ", error));
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  timeval tv = absl::ToTimeval(timeout);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  return fd;
}

// Reads until the peer closes (or the response is too big).
absl::StatusOr<std::string> ReadAll(int fd) {
  std::string out;
  char buf[16 << 10];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return absl::DeadlineExceededError("read timed out");
    }
    if (n < 0) return absl::UnavailableError(absl::StrCat("read failed: ", std::strerror(errno)));
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxResponseBytes) return absl::UnavailableError("response too big");
  }
}

// The body of a `Transfer-Encoding: chunked` response.
absl::StatusOr<std::string> Dechunk(absl::string_view in) {
  std::string out;
  for (;;) {
    const size_t eol = in.find("\r\n");
    if (eol == absl::string_view::npos) return absl::UnavailableError("truncated chunk");
    uint64_t size = 0;
    if (!absl::SimpleHexAtoi(in.substr(0, in.substr(0, eol).find(';')), &size)) {
      return absl::UnavailableError("bad chunk size");
    }
    in.remove_prefix(eol + 2);
    if (size == 0) return out;
    if (in.size() < size + 2) return absl::UnavailableError("truncated chunk");
    out.append(in.data(), size);
    in.remove_prefix(size + 2);
  }
}

absl::StatusOr<HttpResponse> ParseResponse(absl::string_view raw) {
  const size_t head_end = raw.find("\r\n\r\n");
  if (head_end == absl::string_view::npos) return absl::UnavailableError("truncated response");
  const absl::string_view head = raw.substr(0, head_end);
  absl::string_view body = raw.substr(head_end + 4);
  std::vector<absl::string_view> lines = absl::StrSplit(head, "\r\n");
  std::vector<absl::string_view> status_line = absl::StrSplit(lines[0], ' ');
  HttpResponse out;
  if (status_line.size() < 2 || !absl::StartsWith(status_line[0], "HTTP/1.") ||
      !absl::SimpleAtoi(status_line[1], &out.status)) {
    return absl::UnavailableError("not an HTTP response");
  }
  bool chunked = false;
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos) continue;
    const absl::string_view name = lines[i].substr(0, colon);
    const absl::string_view value = absl::StripAsciiWhitespace(lines[i].substr(colon + 1));
    size_t length = 0;
    if (absl::EqualsIgnoreCase(name, "content-length") && absl::SimpleAtoi(value, &length) &&
        length < body.size()) {
      body = body.substr(0, length);
    }
    if (absl::EqualsIgnoreCase(name, "transfer-encoding") &&
        absl::StrContains(absl::AsciiStrToLower(value), "chunked")) {
      chunked = true;
    }
  }
  if (chunked) {
    FERRY_ASSIGN_OR_RETURN(out.body, Dechunk(body));
  } else {
    out.body = std::string(body);
  }
  return out;
}

}  // namespace

absl::StatusOr<HttpResponse> SendHttpRequest(
    absl::string_view base_url, absl::string_view method, absl::string_view path,
    const std::vector<std::pair<std::string, std::string>>& headers, absl::Duration timeout) {
  FERRY_ASSIGN_OR_RETURN(HostPort address, ParseBaseUrl(base_url));
  std::string request = absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: ", address.host,
                                     "\r\nConnection: close\r\nContent-Length: 0\r\n");
  for (const auto& [name, value] : headers) absl::StrAppend(&request, name, ": ", value, "\r\n");
  request += "\r\n";
  FERRY_ASSIGN_OR_RETURN(int fd, Connect(address, timeout));
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      return absl::UnavailableError(absl::StrCat("write failed: ", std::strerror(err)));
    }
    sent += static_cast<size_t>(n);
  }
  absl::StatusOr<std::string> raw = ReadAll(fd);
  close(fd);
  if (!raw.ok()) return raw.status();
  return ParseResponse(*raw);
}

}  // namespace ferry::aws
