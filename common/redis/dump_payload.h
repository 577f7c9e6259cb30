#pragma once

// The footer of a DUMP payload: `<RDB type byte> <value> <2-byte RDB version, little endian>
// <CRC64 of everything before it, little endian>`. RESTORE refuses a payload whose version is
// newer than the server's own (or, on Valkey 9+, in the foreign range) or whose CRC does not
// match, with "DUMP payload version or checksum are wrong".

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace ferry::redis {

// The RDB version a payload was written with; nullopt when `payload` is too short to have a
// footer (10 bytes).
std::optional<int> PayloadVersion(absl::string_view payload);

// The first byte of the payload: the RDB object type (0 string, 4 hash, 15 stream listpacks...);
// nullopt when empty.
std::optional<int> PayloadRdbType(absl::string_view payload);

// CRC64 as Redis computes it (Jones polynomial, reflected, no final xor), continuing from `crc`
// (0 to start). Crc64(0, "123456789") == 0xe9c6d914c4b8d9ca.
uint64_t Crc64(uint64_t crc, absl::string_view bytes);

// Whether the footer's CRC64 matches the bytes before it.
bool PayloadChecksumValid(absl::string_view payload);

// `payload` with its version bytes set to `version` and the CRC64 recomputed: what a server of
// that version would have written for the same bytes. For tests (and the test proxy) that make
// one server look like another; `payload` must have a footer.
std::string WithPayloadVersion(absl::string_view payload, int version);

}  // namespace ferry::redis
