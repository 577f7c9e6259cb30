#include <grpcpp/client_context.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <memory>
#include <string>

#include "common/rpc/address.h"
#include "common/rpc/credentials.h"
#include "common/rpc/status.h"
#include "ferry/v1/ferry.grpc.pb.h"
#include "gtest/gtest.h"

namespace ferry::rpc {
namespace {

TEST(StatusTest, KeepsCodeAndMessageBothWays) {
  absl::Status not_found = absl::NotFoundError("job j1 not found");
  grpc::Status converted = ToGrpcStatus(not_found);
  EXPECT_EQ(converted.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(converted.error_message(), "job j1 not found");
  EXPECT_EQ(FromGrpcStatus(converted), not_found);
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
  EXPECT_EQ(FromGrpcStatus(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "x")).code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(AddressTest, Loopback) {
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1:7420"));
  EXPECT_TRUE(IsLoopbackAddress("127.1.2.3:1"));
  EXPECT_TRUE(IsLoopbackAddress("localhost:7420"));
  EXPECT_TRUE(IsLoopbackAddress("[::1]:7420"));
  EXPECT_TRUE(IsLoopbackAddress("::1"));
  EXPECT_TRUE(IsLoopbackAddress("unix:/tmp/ferry.sock"));
  EXPECT_TRUE(IsLoopbackAddress("ipv4:127.0.0.1:80"));
}

TEST(AddressTest, NotLoopback) {
  EXPECT_FALSE(IsLoopbackAddress("0.0.0.0:7420"));
  EXPECT_FALSE(IsLoopbackAddress("[::]:7420"));
  EXPECT_FALSE(IsLoopbackAddress("10.0.0.5:7420"));
  EXPECT_FALSE(IsLoopbackAddress("controller.example.com:7420"));
  EXPECT_FALSE(IsLoopbackAddress(":7420"));
  EXPECT_FALSE(IsLoopbackAddress("128.0.0.1:7420"));
}

TEST(TokenTest, BearerMatchesExactly) {
  EXPECT_TRUE(BearerTokenMatches("Bearer s3cret", "s3cret"));
  EXPECT_FALSE(BearerTokenMatches("Bearer s3cre", "s3cret"));
  EXPECT_FALSE(BearerTokenMatches("Bearer s3cretX", "s3cret"));
  EXPECT_FALSE(BearerTokenMatches("bearer s3cret", "s3cret"));
  EXPECT_FALSE(BearerTokenMatches("s3cret", "s3cret"));
  EXPECT_FALSE(BearerTokenMatches("Bearer ", ""));
}

// GetJob answers OK when CheckBearerToken accepts the call.
class TokenCheckingService : public ferry::v1::Controller::CallbackService {
 public:
  explicit TokenCheckingService(std::string token) : token_(std::move(token)) {}
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const ferry::v1::GetJobRequest* /*request*/,
                                   ferry::v1::Job* /*response*/) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(ToGrpcStatus(CheckBearerToken(*context, token_)));
    return reactor;
  }

 private:
  std::string token_;
};

class PlaintextTokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }
  void TearDown() override { server_->Shutdown(); }

  static grpc::StatusCode Call(std::shared_ptr<grpc::Channel> channel) {
    auto stub = ferry::v1::Controller::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    ferry::v1::Job job;
    return stub->GetJob(&context, ferry::v1::GetJobRequest(), &job).error_code();
  }

  grpc::StatusCode CallOverNetwork(const std::string& token) {
    ClientSecurity security;
    security.token = token;
    auto channel = CreateClientChannel("127.0.0.1:" + std::to_string(port_), security);
    EXPECT_TRUE(channel.ok());
    return Call(*channel);
  }

  TokenCheckingService service_{"right-token"};
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(PlaintextTokenTest, RightTokenPasses) {
  EXPECT_EQ(CallOverNetwork("right-token"), grpc::StatusCode::OK);
}

TEST_F(PlaintextTokenTest, WrongOrMissingTokenIsUnauthenticated) {
  EXPECT_EQ(CallOverNetwork("wrong-token"), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(CallOverNetwork(""), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(PlaintextTokenTest, InProcessChannelWithInterceptorPasses) {
  EXPECT_EQ(Call(server_->InProcessChannel(grpc::ChannelArguments())),
            grpc::StatusCode::UNAUTHENTICATED);
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> factories;
  factories.push_back(BearerTokenInterceptorFactory("right-token"));
  EXPECT_EQ(Call(server_->experimental().InProcessChannelWithInterceptors(grpc::ChannelArguments(),
                                                                          std::move(factories))),
            grpc::StatusCode::OK);
}

}  // namespace
}  // namespace ferry::rpc
