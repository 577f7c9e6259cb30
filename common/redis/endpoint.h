#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ferry::redis {

// Where a Redis server is and how to log in. Parsed from
// `redis[s]://[user[:password]@]host[:port][/db]`. Holds a password: never log it, print
// Redacted() instead.
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

  // `redis://user@host:port/db` with the password replaced by `***`; safe for logs and errors.
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
// FERRY_FROM_PASSWORD) is used. Errors are INVALID_ARGUMENT with a message that says what is
// wrong; they never contain the password.
absl::StatusOr<Endpoint> ParseEndpointUri(absl::string_view uri,
                                          absl::string_view env_password = "",
                                          EndpointWarnings* warnings = nullptr);

}  // namespace ferry::redis
