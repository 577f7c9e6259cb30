#pragma once

// The one place where absl::Status and grpc::Status meet. The numeric codes are the same
// (both follow google.rpc.Code); messages are kept as they are.

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace ferry::rpc {

// For the edge of a gRPC handler: converts the handler's result once.
grpc::Status ToGrpcStatus(const absl::Status& status);

// For a client: the status of a finished call as an absl::Status.
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace ferry::rpc
