#include "common/redis/capabilities.h"

#include "common/redis/connection.h"

namespace ferry::redis {

Capabilities Capabilities::FromInfo(absl::string_view info_server) {
  return ForVersion(MajorMinor(InfoField(info_server, "redis_version")));
}

Capabilities Capabilities::ForVersion(std::pair<int, int> redis_version) {
  if (redis_version < std::make_pair(4, 0)) redis_version = {4, 0};
  return Capabilities(redis_version);
}

}  // namespace ferry::redis
