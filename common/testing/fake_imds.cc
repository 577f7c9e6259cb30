#include "common/testing/fake_imds.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ferry::testing {
namespace {

constexpr absl::string_view kSessionToken = "fake-imds-session-token";
constexpr absl::string_view kRolesPath = "/latest/meta-data/iam/security-credentials/";

std::string Response(int status, absl::string_view body) {
  return absl::StrCat("HTTP/1.1 ", status,
                      " X\r\nContent-Type: text/plain\r\nContent-Length: ", body.size(),
                      "\r\nConnection: close\r\n\r\n", body);
}

// The value of header `name` in a request head; empty when absent.
std::string Header(absl::string_view head, absl::string_view name) {
  for (absl::string_view line : absl::StrSplit(head, "\r\n")) {
    const size_t colon = line.find(':');
    if (colon != absl::string_view::npos && absl::EqualsIgnoreCase(line.substr(0, colon), name)) {
      return std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
    }
  }
  return "";
}

}  // namespace

absl::StatusOr<std::unique_ptr<FakeImds>> FakeImds::Start() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 64) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const int err = errno;
    close(fd);
    return absl::InternalError(absl::StrCat("fake IMDS: ", std::strerror(err)));
  }
  return std::unique_ptr<FakeImds>(new FakeImds(fd, ntohs(addr.sin_port)));
}

FakeImds::FakeImds(int listen_fd, int port)
    : listen_fd_(listen_fd), port_(port), thread_([this] { Serve(); }) {}

FakeImds::~FakeImds() {
  stop_ = true;
  thread_.join();
  close(listen_fd_);
}

std::string FakeImds::endpoint() const { return absl::StrCat("http://127.0.0.1:", port_); }

void FakeImds::SetRole(std::string role, aws::Credentials credentials) {
  absl::MutexLock lock(&mu_);
  role_ = std::move(role);
  credentials_ = std::move(credentials);
}

void FakeImds::Serve() {
  while (!stop_) {
    pollfd pfd{listen_fd_, POLLIN, 0};
    if (poll(&pfd, 1, 50) <= 0) continue;
    int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    timeval tv{2, 0};
    setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    std::string head;
    char buf[4096];
    while (!absl::StrContains(head, "\r\n\r\n") && head.size() < 65536) {
      ssize_t n = recv(client, buf, sizeof(buf), 0);
      if (n <= 0) break;
      head.append(buf, static_cast<size_t>(n));
    }
    const std::string response = Answer(head);
    (void)send(client, response.data(), response.size(), MSG_NOSIGNAL);
    close(client);
  }
}

std::string FakeImds::Answer(const std::string& head) {
  std::vector<absl::string_view> request_line =
      absl::StrSplit(absl::string_view(head).substr(0, head.find("\r\n")), ' ');
  if (request_line.size() < 2) return Response(400, "bad request");
  const absl::string_view method = request_line[0];
  const absl::string_view path = request_line[1];
  if (path == "/latest/api/token") {
    if (method != "PUT" || Header(head, "X-aws-ec2-metadata-token-ttl-seconds").empty()) {
      ++refused_requests_;
      return Response(400, "missing X-aws-ec2-metadata-token-ttl-seconds");
    }
    return Response(200, kSessionToken);
  }
  if (method != "GET" || Header(head, "X-aws-ec2-metadata-token") != kSessionToken) {
    ++refused_requests_;
    return Response(401, "Unauthorized");
  }
  absl::MutexLock lock(&mu_);
  if (path == kRolesPath) return role_.empty() ? Response(404, "") : Response(200, role_);
  if (role_.empty() || path != absl::StrCat(kRolesPath, role_)) return Response(404, "");
  ++credential_fetches_;
  return Response(
      200, absl::StrCat(
               "{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2026-01-01T00:00:00Z\",\n"
               "  \"Type\" : \"AWS-HMAC\",\n  \"AccessKeyId\" : \"",
               credentials_.access_key_id, "\",\n  \"SecretAccessKey\" : \"",
               credentials_.secret_access_key, "\",\n  \"Token\" : \"", credentials_.session_token,
               "\",\n  \"Expiration\" : \"",
               absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", credentials_.expiration, absl::UTCTimeZone()),
               "\"\n}"));
}

}  // namespace ferry::testing
