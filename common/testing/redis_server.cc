#include "common/testing/redis_server.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/base/status_macros.h"
#include "gtest/gtest.h"

namespace ferry::testing {
namespace {

constexpr absl::Duration kStartTimeout = absl::Seconds(30);
constexpr absl::Duration kStopTimeout = absl::Seconds(15);
constexpr int kStartAttempts = 5;

// Quotes a config argument the way redis.conf's parser (sdssplitargs) reads it back.
std::string QuoteConfigArg(absl::string_view arg) {
  std::string quoted = "\"";
  for (char c : arg) {
    if (c == '"' || c == '\\') quoted.push_back('\\');
    quoted.push_back(c);
  }
  quoted.push_back('"');
  return quoted;
}

absl::Status WriteFile(const std::string& path, absl::string_view contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// Runs a short-lived tool (openssl) to completion; its output goes to `log_file`.
absl::Status RunTool(std::vector<std::string> argv, const std::string& log_file) {
  std::string name = argv.front();
  SubprocessOptions options;
  options.log_file = log_file;
  FERRY_ASSIGN_OR_RETURN(Subprocess tool, Subprocess::Start(std::move(argv), options));
  FERRY_ASSIGN_OR_RETURN(int code, tool.Wait(absl::Seconds(60)));
  if (code != 0) {
    return absl::InternalError(
        absl::StrCat(name, " exited with ", code, ": ", FileTail(log_file, 1000)));
  }
  return absl::OkStatus();
}

absl::Status RequireOpenssl() {
  if (FindProgram("openssl").empty()) {
    return absl::FailedPreconditionError("openssl not found on PATH; install openssl (make deps)");
  }
  return absl::OkStatus();
}

// Writes `<name>.key` and a self-signed CA certificate `<name>.crt` into `dir`.
absl::Status GenerateCa(const std::string& dir, const std::string& name) {
  const std::string base = absl::StrCat(dir, "/", name);
  FERRY_RETURN_IF_ERROR(WriteFile(base + ".cnf", absl::StrCat(R"([req]
distinguished_name = dn
prompt = no
[dn]
CN = ferry test CA )",
                                                              name, R"(
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
)")));
  return RunTool({"openssl", "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt",
                  "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", base + ".key", "-out",
                  base + ".crt", "-days", "3", "-config", base + ".cnf", "-extensions", "v3_ca"},
                 dir + "/openssl.log");
}

// Writes server.key and server.crt (signed by ca.key, valid for localhost and 127.0.0.1).
absl::Status GenerateServerCert(const std::string& dir) {
  FERRY_RETURN_IF_ERROR(WriteFile(dir + "/server.cnf", R"([req]
distinguished_name = dn
prompt = no
[dn]
CN = localhost
[v3_server]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
)"));
  const std::string log = dir + "/openssl.log";
  FERRY_RETURN_IF_ERROR(
      RunTool({"openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
               "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", dir + "/server.key", "-out",
               dir + "/server.csr", "-config", dir + "/server.cnf"},
              log));
  const std::string serial = absl::StrCat(absl::ToUnixMicros(absl::Now()) ^ getpid());
  return RunTool({"openssl", "x509", "-req", "-in", dir + "/server.csr", "-CA", dir + "/ca.crt",
                  "-CAkey", dir + "/ca.key", "-set_serial", serial, "-days", "3", "-out",
                  dir + "/server.crt", "-extfile", dir + "/server.cnf", "-extensions", "v3_server"},
                 log);
}

// A port for the server; in cluster mode port+10000 (the cluster bus) must be free too.
int PickPort(bool cluster) {
  for (int i = 0; i < 100; ++i) {
    int port = FreeTcpPort();
    if (port <= 0) continue;
    if (!cluster) return port;
    if (port + 10000 < 65536 && TcpPortIsFree(port + 10000)) return port;
  }
  return -1;
}

}  // namespace

absl::Status RequireRedisServerBinary() {
  if (FindProgram("redis-server").empty()) {
    return absl::FailedPreconditionError(
        "redis-server not found on PATH; install redis-server (make deps)");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> GenerateUnrelatedCa(absl::string_view dir) {
  FERRY_RETURN_IF_ERROR(RequireOpenssl());
  const std::string dir_str(dir);
  FERRY_RETURN_IF_ERROR(GenerateCa(dir_str, "unrelated-ca"));
  return dir_str + "/unrelated-ca.crt";
}

RedisServer::RedisServer(RedisServerOptions options, std::string dir)
    : options_(std::move(options)), dir_(std::move(dir)) {}

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::Start(RedisServerOptions options) {
  FERRY_RETURN_IF_ERROR(RequireRedisServerBinary());
  if (options.tls) FERRY_RETURN_IF_ERROR(RequireOpenssl());
  std::string dir = MakeTempDir("ferry-redis-");
  if (dir.empty()) return absl::InternalError("cannot create a temp dir for redis-server");
  std::unique_ptr<RedisServer> server(new RedisServer(std::move(options), std::move(dir)));
  if (server->options_.tls) {
    FERRY_RETURN_IF_ERROR(Annotate(GenerateCa(server->dir_, "ca"), "generating the test CA"));
    FERRY_RETURN_IF_ERROR(
        Annotate(GenerateServerCert(server->dir_), "generating the server certificate"));
    server->ca_file_ = server->dir_ + "/ca.crt";
  }
  // Another process may grab the free port before redis-server binds it: try another one.
  absl::Status status;
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    server->port_ = PickPort(server->options_.cluster);
    if (server->port_ <= 0) return absl::UnavailableError("no free TCP port on 127.0.0.1");
    FERRY_RETURN_IF_ERROR(server->WriteConfig());
    FERRY_RETURN_IF_ERROR(server->Launch());
    status = server->WaitReady(kStartTimeout);
    if (status.ok()) return server;
    bool port_taken = absl::StrContains(FileTail(server->log_file(), 4000), "already in use");
    server->Kill();
    if (!port_taken) break;
  }
  return status;
}

RedisServer::~RedisServer() {
  Kill();
  const char* keep = getenv("FERRY_KEEP_TEST_DIRS");
  if (keep != nullptr && std::string(keep) == "1") return;
  (void)RemoveTree(dir_);
}

std::string RedisServer::uri() const {
  return options_.tls ? absl::StrCat("rediss://localhost:", port_)
                      : absl::StrCat("redis://127.0.0.1:", port_);
}

redis::Endpoint RedisServer::endpoint() const {
  redis::Endpoint endpoint;
  endpoint.host = "127.0.0.1";
  endpoint.port = port_;
  endpoint.password = options_.requirepass;
  endpoint.tls = options_.tls;
  if (options_.tls) {
    endpoint.ca_file = ca_file_;
    endpoint.tls_server_name = "localhost";
  }
  return endpoint;
}

absl::StatusOr<redis::Connection> RedisServer::Connect(int db) const {
  redis::Endpoint endpoint = this->endpoint();
  if (db != 0) endpoint.db = db;
  return redis::Connection::Open(endpoint);
}

std::string RedisServer::CommandName(absl::string_view command) const {
  for (const auto& [from, to] : options_.rename_commands) {
    if (absl::EqualsIgnoreCase(from, command)) return to;
  }
  return std::string(command);
}

absl::Status RedisServer::WriteConfig() const {
  std::vector<std::string> lines;
  if (options_.tls) {
    lines.push_back("port 0");
    lines.push_back(absl::StrCat("tls-port ", port_));
    lines.push_back(absl::StrCat("tls-cert-file ", QuoteConfigArg(dir_ + "/server.crt")));
    lines.push_back(absl::StrCat("tls-key-file ", QuoteConfigArg(dir_ + "/server.key")));
    lines.push_back(absl::StrCat("tls-ca-cert-file ", QuoteConfigArg(ca_file_)));
    lines.push_back("tls-auth-clients no");
    lines.push_back("tls-replication yes");
    if (options_.cluster) lines.push_back("tls-cluster yes");
  } else {
    lines.push_back(absl::StrCat("port ", port_));
  }
  lines.push_back("bind 127.0.0.1");
  lines.push_back("daemonize no");
  lines.push_back(absl::StrCat("dir ", QuoteConfigArg(dir_)));
  lines.push_back(absl::StrCat("logfile ", QuoteConfigArg(log_file())));
  lines.push_back("dbfilename dump.rdb");
  lines.push_back("save \"\"");
  lines.push_back("appendonly no");
  lines.push_back(absl::StrCat("databases ", options_.databases));
  if (!options_.requirepass.empty()) {
    lines.push_back(absl::StrCat("requirepass ", QuoteConfigArg(options_.requirepass)));
  }
  for (const std::string& acl : options_.acl_lines) lines.push_back(acl);
  for (const auto& [from, to] : options_.rename_commands) {
    lines.push_back(absl::StrCat("rename-command ", from, " ", QuoteConfigArg(to)));
  }
  if (options_.cluster) {
    lines.push_back("cluster-enabled yes");
    lines.push_back("cluster-config-file nodes.conf");
  }
  if (!options_.maxmemory.empty()) lines.push_back("maxmemory " + options_.maxmemory);
  for (const std::string& line : options_.extra_config) lines.push_back(line);
  return WriteFile(dir_ + "/redis.conf", absl::StrCat(absl::StrJoin(lines, "\n"), "\n"));
}

absl::Status RedisServer::Launch() {
  SubprocessOptions options;
  options.working_dir = dir_;
  // redis.log holds the server's log; this one catches what it prints before opening it.
  options.log_file = dir_ + "/stdout.log";
  FERRY_ASSIGN_OR_RETURN(Subprocess process,
                         Subprocess::Start({"redis-server", dir_ + "/redis.conf"}, options));
  process_.emplace(std::move(process));
  return absl::OkStatus();
}

absl::Status RedisServer::WaitReady(absl::Duration timeout) {
  const std::string ping = CommandName("PING");
  const std::string info = CommandName("INFO");
  redis::ConnectOptions connect_options;
  connect_options.connect_timeout = absl::Seconds(1);
  connect_options.io_timeout = absl::Seconds(5);
  absl::Status probe = absl::UnavailableError("not probed yet");
  bool exited = false;
  absl::Status waited = WaitFor(
      [&] {
        if (!running()) {
          exited = true;
          return true;
        }
        absl::StatusOr<redis::Connection> conn =
            redis::Connection::Open(endpoint(), connect_options);
        if (!conn.ok()) {
          probe = conn.status();
          return false;
        }
        // PING answers LOADING until the dataset is in memory; INFO says so explicitly.
        absl::StatusOr<redis::Reply> reply =
            ping.empty() ? conn->Command({"ECHO", "ready"}) : conn->Command({ping});
        if (reply.ok() && !info.empty()) reply = conn->Command({info, "persistence"});
        if (!reply.ok()) {
          probe = reply.status();
          return false;
        }
        if (!info.empty() && redis::InfoField(reply->str(), "loading") != "0") {
          probe = absl::UnavailableError("still loading");
          return false;
        }
        probe = absl::OkStatus();
        return true;
      },
      timeout);
  if (exited) {
    return StartupError(absl::StrCat("redis-server exited with ", process_->TryWait().value()));
  }
  if (!waited.ok()) {
    return StartupError(absl::StrCat("not ready after ", absl::FormatDuration(timeout),
                                     "; last probe: ", probe.ToString()));
  }
  return absl::OkStatus();
}

absl::Status RedisServer::StartupError(absl::string_view what) const {
  std::string message = absl::StrCat("redis-server on port ", port_, " (dir ", dir_, "): ", what);
  for (const char* log : {"redis.log", "stdout.log"}) {
    std::string tail = FileTail(absl::StrCat(dir_, "/", log), 1500);
    if (!tail.empty()) absl::StrAppend(&message, "\n--- ", log, ":\n", tail);
  }
  return absl::UnavailableError(message);
}

void RedisServer::Kill() {
  if (process_.has_value()) process_->Kill();
}

absl::Status RedisServer::Stop() {
  if (!running()) return absl::OkStatus();
  FERRY_RETURN_IF_ERROR(process_->Signal(SIGTERM));
  absl::StatusOr<int> code = process_->Wait(kStopTimeout);
  if (!code.ok()) {
    process_->Kill();
    return Annotate(code.status(), "redis-server ignored SIGTERM; killed it");
  }
  return absl::OkStatus();
}

absl::Status RedisServer::Restart(bool keep_data) {
  if (running()) {
    if (keep_data) {
      const std::string save = CommandName("SAVE");
      if (save.empty()) return absl::FailedPreconditionError("SAVE is disabled on this server");
      FERRY_ASSIGN_OR_RETURN(redis::Connection conn, Connect());
      FERRY_RETURN_IF_ERROR(conn.Command({save}).status());
    }
    FERRY_RETURN_IF_ERROR(Stop());
  }
  if (!keep_data) {
    std::error_code ignored;
    std::filesystem::remove(dir_ + "/dump.rdb", ignored);
    std::filesystem::remove(dir_ + "/appendonly.aof", ignored);
    std::filesystem::remove_all(dir_ + "/appendonlydir", ignored);
  }
  FERRY_RETURN_IF_ERROR(WriteConfig());
  FERRY_RETURN_IF_ERROR(Launch());
  return WaitReady(kStartTimeout);
}

void RedisServer::FlushAll() {
  const std::string flushall = CommandName("FLUSHALL");
  if (flushall.empty()) {
    ADD_FAILURE() << "FLUSHALL is disabled on the redis-server at port " << port_;
    return;
  }
  absl::StatusOr<redis::Connection> conn = Connect();
  if (!conn.ok()) {
    ADD_FAILURE() << "FlushAll: " << conn.status();
    return;
  }
  absl::StatusOr<redis::Reply> reply = conn->Command({flushall});
  if (!reply.ok()) ADD_FAILURE() << "FlushAll: " << reply.status();
}

}  // namespace ferry::testing
