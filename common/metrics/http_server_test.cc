// The /metrics endpoint on loopback: what it serves, and the listen-address rules.

#include "common/metrics/http_server.h"

#include <httplib.h>

#include "common/metrics/exposition.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::metrics {
namespace {

using ::testing::HasSubstr;

MetricsServerOptions Listen(const std::string& address) {
  MetricsServerOptions options;
  options.listen = address;
  return options;
}

TEST(MetricsServerTest, ServesTheExpositionOnMetricsOnly) {
  Registry registry;
  registry.AddCounter("ferry_test_total", "A test counter.")->Get()->Increment(2);
  auto server = MetricsServer::Start(Listen("127.0.0.1:0"), &registry);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_GT((*server)->port(), 0);
  httplib::Client client("127.0.0.1", (*server)->port());
  httplib::Result result = client.Get("/metrics");
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->get_header_value("Content-Type"), kTextContentType);
  EXPECT_THAT(result->body, HasSubstr("ferry_test_total 2\n"));
  httplib::Result other = client.Get("/");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);
  (*server)->Stop();
  (*server)->Stop();  // Idempotent.
  EXPECT_FALSE(client.Get("/metrics"));
}

TEST(MetricsServerTest, StopsRightAfterStart) {
  Registry registry;
  for (int i = 0; i < 20; ++i) {
    auto server = MetricsServer::Start(Listen("127.0.0.1:0"), &registry);
    ASSERT_TRUE(server.ok()) << server.status();
  }
}

TEST(MetricsServerTest, NonLoopbackNeedsTlsOrInsecure) {
  Registry registry;
  auto refused = MetricsServer::Start(Listen("0.0.0.0:0"), &registry);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("--metrics-listen 0.0.0.0:0"));
  MetricsServerOptions insecure = Listen("0.0.0.0:0");
  insecure.insecure = true;
  EXPECT_TRUE(MetricsServer::Start(insecure, &registry).ok());
  MetricsServerOptions bad_cert = Listen("0.0.0.0:0");
  bad_cert.tls_cert = "/nonexistent/cert.pem";
  bad_cert.tls_key = "/nonexistent/key.pem";
  EXPECT_EQ(MetricsServer::Start(bad_cert, &registry).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(MetricsServerTest, AddressInUseAndMalformedAddresses) {
  Registry registry;
  auto first = MetricsServer::Start(Listen("127.0.0.1:0"), &registry);
  ASSERT_TRUE(first.ok());
  const std::string taken = "127.0.0.1:" + std::to_string((*first)->port());
  EXPECT_EQ(MetricsServer::Start(Listen(taken), &registry).status().code(),
            absl::StatusCode::kUnavailable);
  for (const char* bad : {"127.0.0.1", ":9100", "127.0.0.1:x", "127.0.0.1:70000"}) {
    EXPECT_EQ(MetricsServer::Start(Listen(bad), &registry).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
  std::string host;
  int port = 0;
  ASSERT_TRUE(SplitListenAddress("[::1]:9464", &host, &port).ok());
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 9464);
}

}  // namespace
}  // namespace ferry::metrics
