#include "common/metrics/http_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/base/logging.h"
#include "common/metrics/exposition.h"
#include "common/rpc/address.h"

namespace ferry::metrics {
namespace {

constexpr int kThreads = 2;

// SO_REUSEADDR only: httplib's default also sets SO_REUSEPORT, which would let a second process
// bind the same port and take half of the scrapes.
void SocketOptions(int sock) {
  int yes = 1;
  setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
}

absl::Status CheckSecurity(const MetricsServerOptions& options, bool tls) {
  if (tls || rpc::IsLoopbackAddress(options.listen)) return absl::OkStatus();
  if (!options.insecure) {
    return absl::FailedPreconditionError(
        absl::StrCat(options.flag_name, " ", options.listen,
                     " is not a loopback address: it needs TLS (a certificate and key) or ",
                     options.insecure_flag));
  }
  FERRY_LOG(Warning) << "serving metrics on " << options.listen << " without TLS ("
                     << options.insecure_flag << "): anyone who can reach it reads them";
  return absl::OkStatus();
}

}  // namespace

absl::Status SplitListenAddress(const std::string& listen, std::string* host, int* port) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(absl::StrCat("'", listen, "' is not host:port"));
  }
  std::string h = listen.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  int p = 0;
  if (h.empty() || !absl::SimpleAtoi(listen.substr(colon + 1), &p) || p < 0 || p > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("'", listen, "' is not host:port"));
  }
  *host = std::move(h);
  *port = p;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const MetricsServerOptions& options, const Registry* registry) {
  std::string host;
  int port = 0;
  if (absl::Status status = SplitListenAddress(options.listen, &host, &port); !status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(options.flag_name, ": ", status.message()));
  }
  const bool tls = !options.tls_cert.empty() && !options.tls_key.empty();
  if (absl::Status status = CheckSecurity(options, tls); !status.ok()) return status;
  std::unique_ptr<httplib::Server> server;
  if (tls) {
    server =
        std::make_unique<httplib::SSLServer>(options.tls_cert.c_str(), options.tls_key.c_str());
    if (!server->is_valid()) {
      return absl::InvalidArgumentError(absl::StrCat(
          options.flag_name, ": cannot load the TLS certificate ", options.tls_cert, " and key"));
    }
  } else {
    server = std::make_unique<httplib::Server>();
  }
  server->new_task_queue = [] { return new httplib::ThreadPool(kThreads); };
  server->set_socket_options(SocketOptions);
  server->Get("/metrics", [registry](const httplib::Request&, httplib::Response& response) {
    response.set_content(TextExposition(*registry), kTextContentType);
  });
  const int bound =
      port == 0 ? server->bind_to_any_port(host) : (server->bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    return absl::UnavailableError(
        absl::StrCat(options.flag_name, ": cannot listen on ", options.listen));
  }
  FERRY_LOG(Info) << "serving metrics at " << (tls ? "https://" : "http://")
                  << (host.find(':') == std::string::npos ? host : absl::StrCat("[", host, "]"))
                  << ":" << bound << "/metrics";
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(server), bound));
}

MetricsServer::MetricsServer(std::unique_ptr<httplib::Server> server, int port)
    : server_(std::move(server)), port_(port) {
  thread_ = std::thread([this] {
    server_->listen_after_bind();
    finished_ = true;
  });
}

MetricsServer::~MetricsServer() { Stop(); }

void MetricsServer::Stop() {
  if (!thread_.joinable()) return;
  // httplib's stop() does nothing before the loop runs: wait for it (or for its failure).
  while (!server_->is_running() && !finished_) absl::SleepFor(absl::Milliseconds(1));
  server_->stop();
  thread_.join();
}

}  // namespace ferry::metrics
