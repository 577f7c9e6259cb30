#pragma once

// The IAM authentication token of ElastiCache (Valkey 7.2+, Redis OSS 7.0+ users with IAM
// authentication): a SigV4-presigned `GET http://<cache>/?Action=connect&User=<user>` for the
// service `elasticache`, valid 15 minutes, without its `http://`. Sent as the AUTH password.
// See https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/auth-iam.html.

#include <string>

#include "absl/time/time.h"
#include "common/aws/sigv4.h"

namespace ferry::aws {

struct ElastiCacheTokenRequest {
  // The IAM-enabled ElastiCache user (its user id and name are the same).
  std::string user;
  // The replication group id, or the serverless cache's name; lowercase, as ElastiCache keeps it.
  std::string cache_name;
  std::string region;
  // A serverless cache signs `ResourceType=ServerlessCache` too.
  bool serverless = false;
};

// How long a token is accepted after it was signed: ElastiCache's limit.
inline constexpr absl::Duration kElastiCacheTokenLifetime = absl::Minutes(15);

// The token, signed with `credentials` at `time`. A secret: never log it.
std::string ElastiCacheAuthToken(const ElastiCacheTokenRequest& request,
                                 const Credentials& credentials, absl::Time time);

}  // namespace ferry::aws
