#pragma once

// The AUTH password of an endpoint with ElastiCache IAM authentication (Endpoint::iam): a token
// that common/aws signs with the process's AWS credentials. Connection::Open and the re-AUTH
// of long-lived connections call it; nothing else needs to.

#include <string>

#include "absl/status/statusor.h"
#include "common/redis/endpoint.h"

namespace ferry::redis {

// A token signed now for `endpoint.user` on `endpoint.iam.cluster`, in `endpoint.iam.region`
// (else $AWS_REGION, else $AWS_DEFAULT_REGION), with aws::CredentialsProvider::Default()'s
// credentials. FAILED_PRECONDITION without a region or credentials; UNAVAILABLE when the
// instance metadata service failed. A secret: never log it, never put it in a status.
absl::StatusOr<std::string> IamAuthToken(const Endpoint& endpoint);

}  // namespace ferry::redis
