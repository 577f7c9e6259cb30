#include "common/redis/iam_auth.h"

#include <cstdlib>

#include "absl/status/status.h"
#include "common/aws/credentials.h"
#include "common/aws/elasticache_token.h"
#include "common/base/status_macros.h"

namespace ferry::redis {
namespace {

std::string RegionOf(const IamAuth& iam) {
  if (!iam.region.empty()) return iam.region;
  for (const char* name : {"AWS_REGION", "AWS_DEFAULT_REGION"}) {
    const char* value = std::getenv(name);
    if (value != nullptr && *value != '\0') return value;
  }
  return "";
}

}  // namespace

absl::StatusOr<std::string> IamAuthToken(const Endpoint& endpoint) {
  aws::ElastiCacheTokenRequest request;
  request.user = endpoint.user;
  request.cache_name = endpoint.iam.cluster;
  request.serverless = endpoint.iam.serverless;
  request.region = RegionOf(endpoint.iam);
  if (request.region.empty()) {
    return absl::FailedPreconditionError(
        "IAM authentication needs a region: add region=... to the URI or set AWS_REGION");
  }
  FERRY_ASSIGN_OR_RETURN(aws::Credentials credentials, aws::CredentialsProvider::Default().Get());
  return aws::ElastiCacheAuthToken(request, credentials, absl::Now());
}

}  // namespace ferry::redis
