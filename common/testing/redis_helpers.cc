#include "common/testing/redis_helpers.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace ferry::testing {

std::unique_ptr<RedisServer> StartServer(RedisServerOptions options) {
  auto server = RedisServer::Start(std::move(options));
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

redis::Connection Connect(const RedisServer& server) {
  auto conn = server.Connect();
  EXPECT_TRUE(conn.ok()) << conn.status();
  return std::move(conn).value();
}

int64_t DbSize(const RedisServer& server, int db) {
  absl::StatusOr<redis::Connection> conn = server.Connect(db);
  if (!conn.ok()) return -1;
  absl::StatusOr<redis::Reply> size = conn->Command({"DBSIZE"});
  return size.ok() ? size->integer() : -1;
}

std::string WithUser(const std::string& uri, const std::string& user) {
  const size_t scheme_end = uri.find("://") + 3;
  return uri.substr(0, scheme_end) + user + "@" + uri.substr(scheme_end);
}

std::unique_ptr<RespProxy> ProxyFor(const RedisServer& server, RespProxyOptions options) {
  options.upstream_port = server.port();
  auto proxy = RespProxy::Start(std::move(options));
  EXPECT_TRUE(proxy.ok()) << proxy.status();
  return proxy.ok() ? *std::move(proxy) : nullptr;
}

std::string ProxyUri(const RespProxy& proxy) {
  return absl::StrCat("redis://", proxy.host(), ":", proxy.port());
}

}  // namespace ferry::testing
