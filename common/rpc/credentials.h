#pragma once

// Transport security for ferry's gRPC: TLS from PEM files and a bearer token
// (`authorization: Bearer <token>`). Tokens and keys never appear in logs or error messages.

#include <grpcpp/security/auth_metadata_processor.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/support/client_interceptor.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace grpc {
class Channel;
class ServerContextBase;
}  // namespace grpc

namespace ferry::rpc {

// The metadata key that carries the token (lower case, as gRPC requires).
inline constexpr char kAuthorizationKey[] = "authorization";

// Reads a whole file (certificates, keys). Errors name the path, never the content.
absl::StatusOr<std::string> ReadFileContents(const std::string& path);

// Reads a token file: surrounding whitespace is dropped; an empty token is INVALID_ARGUMENT.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

// Whether `authorization` (a metadata value) is exactly `Bearer <token>`. The comparison takes
// the same time wherever the first difference is. An empty `token` never matches.
bool BearerTokenMatches(absl::string_view authorization, absl::string_view token);

// Refuses calls without `authorization: Bearer <token>` with UNAUTHENTICATED, before any
// handler runs. gRPC installs it only on TLS credentials; plaintext servers check the token in
// their handlers with CheckBearerToken. Thread-safe; never blocks.
class BearerTokenAuthProcessor : public grpc::AuthMetadataProcessor {
 public:
  explicit BearerTokenAuthProcessor(std::string token) : token_(std::move(token)) {}

  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed_auth_metadata,
                       OutputMetadata* response_metadata) override;

 private:
  const std::string token_;
};

// How a server authenticates its clients.
struct ServerSecurity {
  std::string tls_cert_file;  // PEM certificate chain; TLS when set (with tls_key_file).
  std::string tls_key_file;   // PEM private key.
  std::string token;          // Non-empty: every call must carry it as a bearer token.
};

// TLS credentials (with a BearerTokenAuthProcessor when a token is set), or plaintext ones.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerSecurity& security);

// For handlers: OK when `token` is empty or the call carries it (or the processor accepted it);
// UNAUTHENTICATED otherwise. Needed on plaintext servers and for in-process calls, which no
// processor sees; harmless on TLS ones.
absl::Status CheckBearerToken(const grpc::ServerContextBase& context, absl::string_view token);

// How a client reaches a server.
struct ClientSecurity {
  bool tls = false;             // Use TLS.
  std::string ca_file;          // PEM roots for TLS; empty means the system's trust store.
  std::string tls_server_name;  // Name to verify in the server's certificate; empty means the
                                // host of the target address.
  std::string token;            // Bearer token to send; empty sends none.
};

// Call credentials that send `authorization: Bearer <token>`. gRPC sends call credentials
// only over TLS channels.
std::shared_ptr<grpc::CallCredentials> BearerTokenCallCredentials(const std::string& token);

// Adds `authorization: Bearer <token>` to every call of a channel, whatever its transport
// (plaintext, in-process). For `CreateCustomChannelWithInterceptors` and
// `Server::experimental().InProcessChannelWithInterceptors`.
std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>
BearerTokenInterceptorFactory(const std::string& token);

// A channel to `target` (`host:port`) that sends the token (if any) on every call: as call
// credentials over TLS, through an interceptor over plaintext.
absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateClientChannel(const std::string& target,
                                                                   const ClientSecurity& security);

}  // namespace ferry::rpc
