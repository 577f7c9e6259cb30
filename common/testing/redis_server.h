#pragma once

// A real redis-server process for integration tests: its own temp dir, a free loopback port,
// optional password, ACL users, renamed commands, TLS with generated certificates and cluster
// mode. Test support only.

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/redis/connection.h"
#include "common/redis/endpoint.h"
#include "common/testing/process.h"

namespace ferry::testing {

struct RedisServerOptions {
  // Password of the `default` user; the fixture's own connections (endpoint()) use it.
  std::string requirepass;
  // ACL rules written to the config as `user ...` lines, e.g. "user ro on >pw ~* +@read".
  std::vector<std::string> acl_lines;
  // `rename-command FROM TO`; an empty TO disables the command (as ElastiCache does).
  std::vector<std::pair<std::string, std::string>> rename_commands;
  // TLS only (`port 0`): certificates are generated into the server's dir.
  bool tls = false;
  // Raw config lines appended last (so they override the fixture's defaults).
  std::vector<std::string> extra_config;
  int databases = 16;
  // cluster-enabled yes; the node starts with no slots (the test assigns them).
  bool cluster = false;
  // `maxmemory` value such as "64mb"; empty means unlimited.
  std::string maxmemory;
};

// FAILED_PRECONDITION with an install hint when `redis-server` is not on PATH. Tests assert on
// it (never skip): a missing binary must fail CI.
absl::Status RequireRedisServerBinary();

// Creates a CA key and certificate in `dir` that signed nothing the fixtures use; returns the
// certificate's path. For tests that a connection trusting the wrong CA is refused.
absl::StatusOr<std::string> GenerateUnrelatedCa(absl::string_view dir);

// One redis-server process. The destructor kills it and removes its dir (kept when the
// environment has FERRY_KEEP_TEST_DIRS=1). Not thread-safe: one test thread drives it.
class RedisServer {
 public:
  // Starts a server and returns once it answers PING and has finished loading.
  static absl::StatusOr<std::unique_ptr<RedisServer>> Start(RedisServerOptions options = {});

  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;
  ~RedisServer();

  int port() const { return port_; }
  // -1 when the server is not running.
  pid_t pid() const { return running() ? process_->pid() : -1; }
  // False once the process has exited (killed, crashed or stopped).
  bool running() const { return process_.has_value() && !process_->TryWait().has_value(); }
  const std::string& dir() const { return dir_; }
  const RedisServerOptions& options() const { return options_; }
  // PEM of the CA that signed the server's certificate; empty without TLS.
  const std::string& ca_file() const { return ca_file_; }
  std::string log_file() const { return dir_ + "/redis.log"; }

  // `redis://127.0.0.1:PORT` or `rediss://localhost:PORT`; never holds a password.
  std::string uri() const;
  // Admin credentials (the default user's password), TLS settings and the CA to trust.
  // Connects to 127.0.0.1; with TLS the certificate is checked against "localhost".
  redis::Endpoint endpoint() const;
  // A connection with endpoint()'s credentials, in `db`.
  absl::StatusOr<redis::Connection> Connect(int db = 0) const;

  // The name a command has on this server after rename-command; empty when disabled.
  std::string CommandName(absl::string_view command) const;

  // SIGKILL, no save.
  void Kill();
  // Graceful stop (SIGTERM, which saves nothing unless extra_config configured save points);
  // SIGKILL after 10 s.
  absl::Status Stop();
  // Starts the server again on the same port and dir. keep_data: SAVE first (when running) so
  // it loads the RDB; otherwise the RDB and AOF files are removed. Returns once it answers PING
  // and has finished loading.
  absl::Status Restart(bool keep_data);
  // FLUSHALL (under its renamed name); adds a gtest failure when it fails.
  void FlushAll();

 private:
  RedisServer(RedisServerOptions options, std::string dir);

  absl::Status WriteConfig() const;
  absl::Status Launch();
  absl::Status WaitReady(absl::Duration timeout);
  absl::Status StartupError(absl::string_view what) const;

  RedisServerOptions options_;
  std::string dir_;
  std::string ca_file_;
  int port_ = -1;
  // Empty before the first launch. Mutable: running() reaps a child that died on its own.
  mutable std::optional<Subprocess> process_;
};

}  // namespace ferry::testing
