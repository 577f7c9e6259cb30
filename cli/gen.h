#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/redis/endpoint.h"

namespace ferry::cli {

// `ferry gen`: random test data, written to a server (pipelined) or printed as RESP for
// `redis-cli --pipe`.
struct GenOptions {
  std::optional<redis::Endpoint> target;  // Unset: print RESP to stdout.
  uint64_t keys = 100000;
  std::string types = "mixed";  // string, hash, list, set, zset, stream, hll, geo, bitmap, mixed
  double ttl_fraction = 0;      // Share of keys that get a TTL (10 to 60 minutes).
  int value_size = 100;         // Bytes per string value; collections split it over 5 elements.
  uint64_t seed = 1;
  std::string prefix = "key:";
};

// Returns the exit code; prints errors to stderr.
int RunGen(const GenOptions& options);

}  // namespace ferry::cli
