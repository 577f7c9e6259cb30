#pragma once

// Socket helpers of the test proxies (resp_proxy.h, fault_proxy.h): blocking TCP on loopback.

#include <string>

#include "absl/strings/string_view.h"

namespace ferry::testing {

// Writes all of `bytes`; false once the peer is gone (or the socket was shut down).
bool SendAll(int fd, absl::string_view bytes);

// Replies to small commands must not wait for Nagle's delayed ACK.
void SetNoDelay(int fd);

// A connected socket to host:port (IPv4, TCP_NODELAY), or -1 (with errno set) when it cannot be
// reached within 5 s: SO_SNDTIMEO bounds connect() too, so a stopped server with a full backlog
// does not hang a proxy's accept thread (and with it its destructor).
int ConnectTcp(const std::string& host, int port);

}  // namespace ferry::testing
