#include "common/rpc/credentials.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/server_context.h>

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace ferry::rpc {
namespace {

constexpr absl::string_view kBearerPrefix = "Bearer ";
// Set by the processor on the auth context of calls whose token it accepted.
constexpr char kTokenCheckedProperty[] = "ferry_bearer_token";

// Compares without an early exit, so the time does not tell where the strings differ.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = a.size() > b.size() ? a.size() : b.size();
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

class BearerTokenInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit BearerTokenInterceptor(const std::string& header) : header_(header) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({kAuthorizationKey, header_});
    }
    methods->Proceed();
  }

 private:
  const std::string& header_;  // Owned by the factory, which outlives the channel's calls.
};

class BearerTokenInterceptorFactoryImpl
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerTokenInterceptorFactoryImpl(const std::string& token)
      : header_(absl::StrCat(kBearerPrefix, token)) {}

  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* /*info*/) override {
    return new BearerTokenInterceptor(header_);
  }

 private:
  const std::string header_;
};

}  // namespace

absl::StatusOr<std::string> ReadFileContents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read file ", path));
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) return absl::InvalidArgumentError(absl::StrCat("cannot read file ", path));
  return out.str();
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  FERRY_ASSIGN_OR_RETURN(std::string contents, ReadFileContents(path));
  std::string token(absl::StripAsciiWhitespace(contents));
  if (token.empty()) return absl::InvalidArgumentError(absl::StrCat("token file is empty: ", path));
  return token;
}

bool BearerTokenMatches(absl::string_view authorization, absl::string_view token) {
  if (token.empty() || !absl::StartsWith(authorization, kBearerPrefix)) return false;
  authorization.remove_prefix(kBearerPrefix.size());
  return ConstantTimeEquals(authorization, token);
}

grpc::Status BearerTokenAuthProcessor::Process(const InputMetadata& auth_metadata,
                                               grpc::AuthContext* context,
                                               OutputMetadata* consumed_auth_metadata,
                                               OutputMetadata* /*response_metadata*/) {
  auto it = auth_metadata.find(kAuthorizationKey);
  if (it == auth_metadata.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing bearer token");
  }
  absl::string_view value(it->second.data(), it->second.size());
  if (!BearerTokenMatches(value, token_)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "invalid bearer token");
  }
  context->AddProperty(kTokenCheckedProperty, "ok");
  // Consumed metadata is hidden from handlers, so the token goes no further.
  consumed_auth_metadata->insert(std::make_pair(std::string(kAuthorizationKey),
                                                std::string(it->second.data(), it->second.size())));
  return grpc::Status::OK;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerSecurity& security) {
  const bool has_cert = !security.tls_cert_file.empty();
  const bool has_key = !security.tls_key_file.empty();
  if (has_cert != has_key) {
    return absl::InvalidArgumentError("TLS needs both a certificate and a key file");
  }
  if (!has_cert) return grpc::InsecureServerCredentials();
  FERRY_ASSIGN_OR_RETURN(std::string cert, ReadFileContents(security.tls_cert_file));
  FERRY_ASSIGN_OR_RETURN(std::string key, ReadFileContents(security.tls_key_file));
  grpc::SslServerCredentialsOptions options;
  options.pem_key_cert_pairs.push_back({std::move(key), std::move(cert)});
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::SslServerCredentials(options);
  if (credentials == nullptr) return absl::InvalidArgumentError("invalid TLS certificate or key");
  if (!security.token.empty()) {
    credentials->SetAuthMetadataProcessor(
        std::make_shared<BearerTokenAuthProcessor>(security.token));
  }
  return credentials;
}

absl::Status CheckBearerToken(const grpc::ServerContextBase& context, absl::string_view token) {
  if (token.empty()) return absl::OkStatus();
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(kAuthorizationKey);
  if (it == metadata.end()) {
    // On TLS servers the processor already checked and consumed the token.
    std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
    if (auth != nullptr && !auth->FindPropertyValues(kTokenCheckedProperty).empty()) {
      return absl::OkStatus();
    }
    return absl::UnauthenticatedError("missing bearer token");
  }
  absl::string_view value(it->second.data(), it->second.size());
  if (!BearerTokenMatches(value, token)) return absl::UnauthenticatedError("invalid bearer token");
  return absl::OkStatus();
}

std::shared_ptr<grpc::CallCredentials> BearerTokenCallCredentials(const std::string& token) {
  return grpc::AccessTokenCredentials(token);
}

std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>
BearerTokenInterceptorFactory(const std::string& token) {
  return std::make_unique<BearerTokenInterceptorFactoryImpl>(token);
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateClientChannel(const std::string& target,
                                                                   const ClientSecurity& security) {
  grpc::ChannelArguments args;
  if (!security.tls) {
    std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> factories;
    if (!security.token.empty()) factories.push_back(BearerTokenInterceptorFactory(security.token));
    return grpc::experimental::CreateCustomChannelWithInterceptors(
        target, grpc::InsecureChannelCredentials(), args, std::move(factories));
  }
  grpc::SslCredentialsOptions options;
  if (!security.ca_file.empty()) {
    FERRY_ASSIGN_OR_RETURN(options.pem_root_certs, ReadFileContents(security.ca_file));
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::SslCredentials(options);
  if (!security.token.empty()) {
    credentials =
        grpc::CompositeChannelCredentials(credentials, BearerTokenCallCredentials(security.token));
  }
  if (!security.tls_server_name.empty()) {
    args.SetSslTargetNameOverride(security.tls_server_name);
  }
  return grpc::CreateCustomChannel(target, credentials, args);
}

}  // namespace ferry::rpc
