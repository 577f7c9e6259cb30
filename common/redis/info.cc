#include "common/redis/info.h"

namespace ferry::redis {

absl::StatusOr<std::optional<std::string>> ReadInfo(Connection& connection,
                                                    absl::string_view section) {
  absl::StatusOr<Reply> info =
      section.empty() ? connection.Command({"INFO"}) : connection.Command({"INFO", section});
  if (info.ok()) return std::optional<std::string>(std::string(info->str()));
  if (info.status().code() == absl::StatusCode::kPermissionDenied) return std::nullopt;
  return info.status();
}

absl::StatusOr<Capabilities> ReadCapabilities(Connection& connection) {
  absl::StatusOr<std::optional<std::string>> info = ReadInfo(connection, "server");
  if (!info.ok()) return info.status();
  return Capabilities::FromInfo(info->value_or(""));
}

}  // namespace ferry::redis
