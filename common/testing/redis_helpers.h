#pragma once

// Shorthands for integration tests that start servers and talk to them: each records a gtest
// failure with the reason when the step fails.

#include <cstdint>
#include <memory>
#include <string>

#include "common/redis/connection.h"
#include "common/testing/redis_server.h"
#include "common/testing/resp_proxy.h"

namespace ferry::testing {

// RedisServer::Start; null (after a test failure) when the server cannot start.
std::unique_ptr<RedisServer> StartServer(RedisServerOptions options = {});

// A connection to db 0 of `server`; a test failure, then an abort, when it cannot connect.
redis::Connection Connect(const RedisServer& server);

// DBSIZE of `db` on `server`; -1 when it cannot be asked (a node that is down, say), without a
// test failure, so it can be polled.
int64_t DbSize(const RedisServer& server, int db = 0);

// `uri` (scheme://host...) with `user@` put in front of the host.
std::string WithUser(const std::string& uri, const std::string& user);

// A RespProxy in front of `server` (options.upstream_port set to it); null (after a test
// failure) when it cannot start.
std::unique_ptr<RespProxy> ProxyFor(const RedisServer& server, RespProxyOptions options);

// redis://host:port of `proxy`.
std::string ProxyUri(const RespProxy& proxy);

}  // namespace ferry::testing
