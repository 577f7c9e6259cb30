#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace ferry::redis {

// ElastiCache IAM authentication: the AUTH password is a token ferry signs itself (SigV4, from
// the environment's or the instance role's AWS credentials), and every connection AUTHs again
// with a fresh one at `reauth_interval`, well within the token's 15 minutes. From the URI's
// `?iam=1&cluster=NAME[&region=R][&serverless=1][&reauth=10m]`.
struct IamAuth {
  bool enabled = false;
  // The replication group id or serverless cache name, lowercase.
  std::string cluster;
  // Empty: AWS_REGION, else AWS_DEFAULT_REGION, when a connection signs.
  std::string region;
  bool serverless = false;
  absl::Duration reauth_interval = absl::Minutes(10);
};

// Where a Redis server is and how to log in. Parsed from
// `redis[s]://[user[:password]@]host[:port][/db][?iam=1&cluster=...]`. Holds a password: never
// log it, print Redacted() instead.
struct Endpoint {
  std::string host;
  int port = 6379;
  std::optional<int> db;  // From the URI path; unset means "not chosen".
  std::string user;       // Empty: AUTH with the password alone (or no AUTH at all).
  std::string password;   // Empty: no AUTH.
  bool tls = false;
  std::string ca_file;          // PEM bundle; empty means the system's default trust store.
  bool verify_peer = true;      // Certificate and host-name verification (TLS only).
  std::string tls_server_name;  // SNI and host-name check; empty means `host`.
  IamAuth iam;

  // `redis://user@host:port/db[?iam=1...]` with the password replaced by `***`; safe for logs
  // and errors (the IAM options hold no secret), and parsed back to the same endpoint.
  std::string Redacted() const;
  // `host:port`, with IPv6 addresses in brackets.
  std::string Address() const;
};

// What the parser noticed that the caller should tell the operator about.
struct EndpointWarnings {
  bool password_in_uri = false;
};

// A `host:port` or `[v6]:port` address (Endpoint::Address(), cluster node addresses, MOVED
// targets): the host without brackets, and a port in 1..65535; nullopt when malformed. The host
// may be empty (a MOVED from a node that does not know its own address).
struct HostPort {
  std::string host;
  int port = 0;
};
std::optional<HostPort> ParseAddress(absl::string_view address);

// Parses `uri`. When the URI has no password, `env_password` (for example the value of
// FERRY_FROM_PASSWORD) is used, except with `iam=1` (which needs rediss://, a user and
// `cluster`, and refuses a password in the URI). Errors are INVALID_ARGUMENT with a message
// that says what is wrong; they never contain the password.
absl::StatusOr<Endpoint> ParseEndpointUri(absl::string_view uri,
                                          absl::string_view env_password = "",
                                          EndpointWarnings* warnings = nullptr);

}  // namespace ferry::redis
