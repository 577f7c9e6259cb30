#include "agent/dump_compare.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"

namespace ferry::agent {
namespace {

// DUMP payloads end with a 2-byte RDB version and an 8-byte CRC64; servers of different
// versions frame the same value differently there.
constexpr size_t kDumpTrailer = 10;
// RDB object types whose payload is a hash table's iteration order: a key restored from a
// payload dumps its elements in another order (bucket chains come out reversed).
constexpr unsigned char kRdbTypeSet = 2;
constexpr unsigned char kRdbTypeHash = 4;

// Reads the RDB encoding of a hash-table set or hash (a length, then strings: raw, integer or
// LZF-compressed). Enough to compare two payloads by content; nullopt for anything it cannot
// read, which then counts as different.
class RdbReader {
 public:
  explicit RdbReader(absl::string_view in) : in_(in) {}

  bool done() const { return in_.empty(); }

  // A length; `encoded` says that the low 6 bits of an 11xxxxxx byte name a string encoding.
  std::optional<uint64_t> Length(bool* encoded = nullptr) {
    if (in_.empty()) return std::nullopt;
    const unsigned char first = Byte();
    if (encoded != nullptr) *encoded = (first >> 6) == 3;
    switch (first >> 6) {
      case 0:
      case 3:
        return first & 0x3f;
      case 1:
        if (in_.empty()) return std::nullopt;
        return (uint64_t{first & 0x3fu} << 8) | Byte();
      default:
        if (first != 0x80 && first != 0x81) return std::nullopt;
        return BigEndian(first == 0x80 ? 4 : 8);
    }
  }

  std::optional<std::string> String() {
    bool encoded = false;
    const std::optional<uint64_t> len = Length(&encoded);
    if (!len.has_value()) return std::nullopt;
    if (!encoded) return Take(*len);
    if (*len <= 2) {  // An integer of 1, 2 or 4 bytes, little-endian, signed.
      const size_t bytes = size_t{1} << *len;
      if (in_.size() < bytes) return std::nullopt;
      uint64_t v = 0;
      for (size_t b = 0; b < bytes; ++b) v |= uint64_t{Byte()} << (8 * b);
      const int shift = 64 - 8 * static_cast<int>(bytes);
      return std::to_string(static_cast<int64_t>(v << shift) >> shift);
    }
    if (*len != 3) return std::nullopt;
    const std::optional<uint64_t> compressed = Length();
    const std::optional<uint64_t> plain = Length();
    if (!compressed.has_value() || !plain.has_value()) return std::nullopt;
    const std::optional<std::string> data = Take(*compressed);
    if (!data.has_value()) return std::nullopt;
    return LzfDecompress(*data, *plain);
  }

 private:
  unsigned char Byte() {
    const unsigned char c = static_cast<unsigned char>(in_.front());
    in_.remove_prefix(1);
    return c;
  }
  std::optional<uint64_t> BigEndian(size_t bytes) {
    if (in_.size() < bytes) return std::nullopt;
    uint64_t v = 0;
    for (size_t b = 0; b < bytes; ++b) v = (v << 8) | Byte();
    return v;
  }
  std::optional<std::string> Take(uint64_t n) {
    if (in_.size() < n) return std::nullopt;
    std::string out(in_.substr(0, n));
    in_.remove_prefix(n);
    return out;
  }
  // liblzf's format, as Redis writes it: literal runs and back references.
  static std::optional<std::string> LzfDecompress(absl::string_view in, uint64_t plain) {
    std::string out;
    out.reserve(plain);
    size_t ip = 0;
    while (ip < in.size()) {
      const unsigned ctrl = static_cast<unsigned char>(in[ip++]);
      if (ctrl < 32) {
        const size_t run = ctrl + 1;
        if (ip + run > in.size()) return std::nullopt;
        out.append(in.data() + ip, run);
        ip += run;
        continue;
      }
      size_t len = ctrl >> 5;
      if (len == 7) {
        if (ip >= in.size()) return std::nullopt;
        len += static_cast<unsigned char>(in[ip++]);
      }
      if (ip >= in.size()) return std::nullopt;
      const size_t back = ((ctrl & 0x1fu) << 8) + static_cast<unsigned char>(in[ip++]) + 1;
      if (back > out.size()) return std::nullopt;
      // Byte by byte: a reference may overlap what it produces.
      for (size_t k = 0, from = out.size() - back; k < len + 2; ++k) out.push_back(out[from + k]);
    }
    if (out.size() != plain) return std::nullopt;
    return out;
  }

  absl::string_view in_;
};

}  // namespace

std::optional<std::vector<std::string>> SortedDumpElements(absl::string_view payload) {
  if (payload.size() < kDumpTrailer + 1) return std::nullopt;
  const unsigned char type = static_cast<unsigned char>(payload.front());
  if (type != kRdbTypeSet && type != kRdbTypeHash) return std::nullopt;
  RdbReader reader(payload.substr(1, payload.size() - 1 - kDumpTrailer));
  const std::optional<uint64_t> len = reader.Length();
  if (!len.has_value()) return std::nullopt;
  std::vector<std::string> elements;
  for (uint64_t e = 0; e < *len; ++e) {
    std::optional<std::string> member = reader.String();
    if (!member.has_value()) return std::nullopt;
    if (type == kRdbTypeHash) {
      std::optional<std::string> value = reader.String();
      if (!value.has_value()) return std::nullopt;
      *member = absl::StrCat(member->size(), ":", *member, *value);
    }
    elements.push_back(*std::move(member));
  }
  if (!reader.done()) return std::nullopt;
  std::sort(elements.begin(), elements.end());
  return elements;
}

bool SameDumpValue(absl::string_view source, absl::string_view target) {
  if (source == target) return true;
  if (source.size() < kDumpTrailer || target.size() < kDumpTrailer) return false;
  if (source.substr(0, source.size() - kDumpTrailer) ==
      target.substr(0, target.size() - kDumpTrailer)) {
    return true;
  }
  std::optional<std::vector<std::string>> a = SortedDumpElements(source);
  if (!a.has_value() || source.front() != target.front()) return false;
  std::optional<std::vector<std::string>> b = SortedDumpElements(target);
  return b.has_value() && *a == *b;
}

}  // namespace ferry::agent
