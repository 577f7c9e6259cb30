#pragma once

// The `/metrics` endpoint: a registry's text exposition over HTTP, or HTTPS with a certificate,
// served by cpp-httplib (Debian's libcpp-httplib-dev) on a thread pool of its own.

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/metrics/registry.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace ferry::metrics {

struct MetricsServerOptions {
  // `host:port` or `[v6]:port`; port 0 picks a free one.
  std::string listen;
  // PEM certificate chain and key: HTTPS when both are set.
  std::string tls_cert;
  std::string tls_key;
  // Allows a non-loopback address without TLS (warned about), as for the gRPC port.
  bool insecure = false;
  // What the warning and errors call the flags.
  std::string flag_name = "--metrics-listen";
  std::string insecure_flag = "--insecure";
};

// Start() and Stop() from any thread. `registry` must outlive the server.
class MetricsServer {
 public:
  // FAILED_PRECONDITION for a non-loopback address without TLS and without `insecure`;
  // INVALID_ARGUMENT for an address that is not host:port or a certificate that cannot be
  // loaded; UNAVAILABLE when the address cannot be bound (already in use, for instance).
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const MetricsServerOptions& options,
                                                              const Registry* registry);
  // Stop().
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The bound port.
  int port() const { return port_; }
  // Stops serving and joins the thread. Idempotent.
  void Stop();

 private:
  MetricsServer(std::unique_ptr<httplib::Server> server, int port);

  std::unique_ptr<httplib::Server> server_;
  const int port_;
  std::atomic<bool> finished_{false};  // listen_after_bind returned.
  std::thread thread_;
};

// Splits `host:port` / `[v6]:port` into its parts; INVALID_ARGUMENT otherwise.
absl::Status SplitListenAddress(const std::string& listen, std::string* host, int* port);

}  // namespace ferry::metrics
