#include "common/redis/dump_payload.h"

#include <array>

namespace ferry::redis {
namespace {

constexpr size_t kFooterBytes = 10;  // 2 bytes of RDB version, 8 of CRC64.

// Byte-at-a-time table of the reflected Jones polynomial (0xad93d23594c935a9 reversed).
std::array<uint64_t, 256> MakeCrcTable() {
  constexpr uint64_t kReflectedPoly = 0x95ac9329ac4bc9b5ULL;
  std::array<uint64_t, 256> table{};
  for (uint64_t i = 0; i < 256; ++i) {
    uint64_t crc = i;
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 1) ? (crc >> 1) ^ kReflectedPoly : crc >> 1;
    table[i] = crc;
  }
  return table;
}

uint64_t ReadLittleEndian(absl::string_view bytes) {
  uint64_t value = 0;
  for (size_t i = bytes.size(); i > 0; --i) {
    value = (value << 8) | static_cast<unsigned char>(bytes[i - 1]);
  }
  return value;
}

void WriteLittleEndian(uint64_t value, size_t n, std::string& out) {
  for (size_t i = 0; i < n; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

}  // namespace

std::optional<int> PayloadVersion(absl::string_view payload) {
  if (payload.size() < kFooterBytes) return std::nullopt;
  return static_cast<int>(ReadLittleEndian(payload.substr(payload.size() - kFooterBytes, 2)));
}

std::optional<int> PayloadRdbType(absl::string_view payload) {
  if (payload.empty()) return std::nullopt;
  return static_cast<unsigned char>(payload[0]);
}

uint64_t Crc64(uint64_t crc, absl::string_view bytes) {
  static const std::array<uint64_t, 256> table = MakeCrcTable();
  for (unsigned char byte : bytes) crc = table[(crc ^ byte) & 0xff] ^ (crc >> 8);
  return crc;
}

bool PayloadChecksumValid(absl::string_view payload) {
  if (payload.size() < kFooterBytes) return false;
  const absl::string_view body = payload.substr(0, payload.size() - 8);
  return Crc64(0, body) == ReadLittleEndian(payload.substr(payload.size() - 8));
}

std::string WithPayloadVersion(absl::string_view payload, int version) {
  std::string out(payload.substr(
      0, payload.size() < kFooterBytes ? payload.size() : payload.size() - kFooterBytes));
  WriteLittleEndian(static_cast<uint64_t>(version), 2, out);
  const uint64_t crc = Crc64(0, out);
  WriteLittleEndian(crc, 8, out);
  return out;
}

}  // namespace ferry::redis
