#include "common/redis/capabilities.h"

#include "absl/strings/str_cat.h"
#include "common/redis/connection.h"

namespace ferry::redis {
namespace {

constexpr std::pair<int, int> kOldest = {4, 0};
// Every Valkey so far reports this redis_version.
constexpr std::pair<int, int> kValkeyRedisVersion = {7, 2};

}  // namespace

Capabilities Capabilities::FromInfo(absl::string_view info_server) {
  const std::string valkey = InfoField(info_server, "valkey_version");
  if (!valkey.empty() || InfoField(info_server, "server_name") == "valkey") {
    Capabilities caps = ForValkey(MajorMinor(valkey));
    std::pair<int, int> redis_version = MajorMinor(InfoField(info_server, "redis_version"));
    if (redis_version >= kOldest) caps.version_ = redis_version;
    return caps;
  }
  return ForVersion(MajorMinor(InfoField(info_server, "redis_version")));
}

Capabilities Capabilities::ForVersion(std::pair<int, int> redis_version) {
  if (redis_version < kOldest) redis_version = kOldest;
  return Capabilities(Engine::kRedis, redis_version, {0, 0});
}

Capabilities Capabilities::ForValkey(std::pair<int, int> valkey_version) {
  // The first Valkey was 7.2; an unreadable valkey_version is taken for it.
  if (valkey_version < std::make_pair(7, 2)) valkey_version = {7, 2};
  return Capabilities(Engine::kValkey, kValkeyRedisVersion, valkey_version);
}

std::string Capabilities::Describe() const {
  if (engine_ == Engine::kValkey) {
    return absl::StrCat("Valkey ", valkey_version_.first, ".", valkey_version_.second);
  }
  return absl::StrCat("Redis ", version_.first, ".", version_.second);
}

bool Capabilities::scan_count_one_is_one_position() const {
  return engine_ == Engine::kRedis || valkey_version_ < std::make_pair(8, 1);
}

bool Capabilities::hash_field_ttl() const {
  if (engine_ == Engine::kValkey) return valkey_version_ >= std::make_pair(9, 0);
  return AtLeast(7, 4);
}

int Capabilities::TablePayloadVersion() const {
  if (engine_ == Engine::kValkey) return valkey_version_ >= std::make_pair(9, 0) ? 80 : 11;
  if (AtLeast(7, 4)) return 12;
  if (AtLeast(7, 2)) return 11;
  if (AtLeast(7, 0)) return 10;
  if (AtLeast(5, 0)) return 9;
  return 8;
}

bool Capabilities::ReadsPayload(Engine engine, int own, int payload) {
  (void)engine;  // The foreign range is known by the version number alone.
  if (payload > own) return false;
  if (own >= 80 && payload >= 12 && payload <= 79) return false;
  return true;
}

}  // namespace ferry::redis
