// The DUMP payload footer (common/redis/dump_payload.h): version and type of any bytes, the
// checksum, and a payload re-versioned the way the test proxy does it.

#include <fuzzer/FuzzedDataProvider.h>

#include <string>

#include "common/redis/dump_payload.h"
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using ferry::fuzz::Check;
  namespace redis = ferry::redis;
  FuzzedDataProvider input(data, size);
  const int version = input.ConsumeIntegralInRange<int>(0, 0xffff);
  const size_t split = input.ConsumeIntegral<uint16_t>();
  const std::string payload = input.ConsumeRemainingBytesAsString();

  const std::optional<int> found = redis::PayloadVersion(payload);
  Check(found.has_value() == (payload.size() >= 10), "version of a payload without footer");
  Check(!found.has_value() || (*found >= 0 && *found <= 0xffff), "version out of range");
  const std::optional<int> type = redis::PayloadRdbType(payload);
  Check(type.has_value() == !payload.empty() && (!type || (*type >= 0 && *type <= 255)),
        "RDB type");
  const bool valid = redis::PayloadChecksumValid(payload);
  Check(!valid || payload.size() >= 10, "checksum valid without a footer");

  // CRC64 continues across pieces.
  const absl::string_view bytes(payload);
  const size_t cut = bytes.empty() ? 0 : split % (bytes.size() + 1);
  Check(redis::Crc64(redis::Crc64(0, bytes.substr(0, cut)), bytes.substr(cut)) ==
            redis::Crc64(0, bytes),
        "CRC64 of pieces differs");

  if (payload.size() >= 10) {
    const std::string moved = redis::WithPayloadVersion(payload, version);
    Check(moved.size() == payload.size(), "re-versioned payload changed size");
    Check(moved.compare(0, payload.size() - 10, payload, 0, payload.size() - 10) == 0,
          "re-versioned payload changed its body");
    Check(redis::PayloadVersion(moved) == version, "re-versioned payload has another version");
    Check(redis::PayloadChecksumValid(moved), "re-versioned payload fails its checksum");
    Check(redis::WithPayloadVersion(moved, *found) == payload || !valid,
          "versioning back does not give the payload");
  }
  return 0;
}
