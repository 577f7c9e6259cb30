#include "common/aws/elasticache_token.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace ferry::aws {

std::string ElastiCacheAuthToken(const ElastiCacheTokenRequest& request,
                                 const Credentials& credentials, absl::Time time) {
  std::vector<std::pair<std::string, std::string>> query = {{"Action", "connect"},
                                                            {"User", request.user}};
  if (request.serverless) query.emplace_back("ResourceType", "ServerlessCache");
  // AWS's own examples (the Java SDK's AWS4Signer.presignRequest) sign the hash of the empty
  // body, not UNSIGNED-PAYLOAD (which only S3's presigner uses).
  const std::string query_string =
      PresignedQuery(request.cache_name, "/", std::move(query), HexSha256(""), credentials,
                     {request.region, "elasticache"}, time, kElastiCacheTokenLifetime);
  return absl::StrCat(request.cache_name, "/?", query_string);
}

}  // namespace ferry::aws
