#pragma once

// Reading INFO with the one permission rule every caller shares. Restricted users (ElastiCache
// read-only users, ACLs without +info, a renamed INFO) may not run it: they get nullopt and the
// caller falls back to what it can probe or check otherwise; any other failure is an error.

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/redis/capabilities.h"
#include "common/redis/connection.h"

namespace ferry::redis {

// `INFO <section>` (plain `INFO` when `section` is empty: the default sections, which every
// version from 4.0 answers alike). nullopt when INFO is refused (PERMISSION_DENIED).
absl::StatusOr<std::optional<std::string>> ReadInfo(Connection& connection,
                                                    absl::string_view section = "");

// The server's capabilities from `INFO server`; those of the oldest supported version when INFO
// is refused, so nothing newer is sent.
absl::StatusOr<Capabilities> ReadCapabilities(Connection& connection);

}  // namespace ferry::redis
