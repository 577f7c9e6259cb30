// The INFO readers: InfoField and MajorMinor (common/redis/connection.h), the capabilities and
// SCAN scheme read from `INFO server`, and the planner's `INFO keyspace` parser.

#include <fuzzer/FuzzedDataProvider.h>

#include <string>

#include "common/redis/capabilities.h"
#include "common/redis/connection.h"
#include "common/redis/scan_math.h"
#include "fuzz/fuzz_support.h"
#include "server/planner.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using ferry::fuzz::Check;
  namespace redis = ferry::redis;
  FuzzedDataProvider input(data, size);
  const std::string field = input.ConsumeRandomLengthString(24);
  const bool cluster = input.ConsumeBool();
  const std::string info = input.ConsumeRemainingBytesAsString();

  const std::string value = redis::InfoField(info, field);
  Check(value.find('\n') == std::string::npos, "a field's value spans lines");
  if (!value.empty()) {
    Check(info.find(field + ":" + value) != std::string::npos, "a value not in the text");
  }
  // A field found in a text is found again in a text made of that one line.
  if (!field.empty() && field.find_first_of(":\n") == std::string::npos &&
      value.find_first_of("\r\t\v\f ") == std::string::npos) {
    Check(redis::InfoField(field + ":" + value + "\r\n", field) == value, "field not found");
  }
  const std::pair<int, int> version = redis::MajorMinor(info);
  (void)version;
  const redis::Capabilities caps = redis::Capabilities::FromInfo(info);
  (void)caps.Describe();
  (void)redis::ScanSchemeOf(info, cluster);
  for (const auto& [db, keys] : ferry::server::ParseKeyspace(info)) {
    Check(db >= 0, "a negative db in INFO keyspace");
    (void)keys;
  }
  return 0;
}
