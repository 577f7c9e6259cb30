#pragma once

// Comparing DUMP payloads by value: whether a key found on the target already holds the
// source's value (a key SCAN returned twice is no conflict; DESIGN.md, "Honesty rules").

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace ferry::agent {

// Whether two DUMP payloads hold the same value. Byte-equal bodies are the same value whatever
// the trailers (RDB version and CRC64); hash-table sets and hashes are compared by content,
// since a restored key dumps its elements in another order. Any other difference counts as a
// different value, even where only the encoding differs (a target with other
// *-max-listpack-* settings converts on RESTORE): a false conflict, never a silent overwrite.
bool SameDumpValue(absl::string_view source, absl::string_view target);

// The elements of a hash-table set (members) or hash (field and value joined, prefixed by the
// field's length), sorted; nullopt when `payload` is neither or cannot be read (strings raw,
// integer-encoded or LZF-compressed are understood).
std::optional<std::vector<std::string>> SortedDumpElements(absl::string_view payload);

}  // namespace ferry::agent
