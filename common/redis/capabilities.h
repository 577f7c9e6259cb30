#pragma once

// What a server can do, by version: the one table that says whether a command or an option
// exists on a side (DESIGN.md, "Versions"). Callers ask it instead of comparing versions; a
// command the table promises may still be renamed or refused by an ACL, so callers that depend
// on one also handle its refusal.

#include <utility>

#include "absl/strings/string_view.h"

namespace ferry::redis {

class Capabilities {
 public:
  // From `INFO server` text (Redis or Valkey; Valkey reports a compatible redis_version). An
  // unreadable version is taken for the oldest supported one (4.0), so nothing newer is sent.
  static Capabilities FromInfo(absl::string_view info_server);
  static Capabilities ForVersion(std::pair<int, int> redis_version);

  std::pair<int, int> version() const { return version_; }

  // RESTORE ... ABSTTL (5.0).
  bool restore_absttl() const { return AtLeast(5, 0); }
  // SET ... PXAT (6.2).
  bool set_pxat() const { return AtLeast(6, 2); }
  // PEXPIRETIME: a key's expiry as an absolute Unix time in ms (7.0).
  bool pexpiretime() const { return AtLeast(7, 0); }
  // SCAN ... TYPE (6.0).
  bool scan_type() const { return AtLeast(6, 0); }

 private:
  explicit Capabilities(std::pair<int, int> version) : version_(version) {}
  bool AtLeast(int major, int minor) const { return version_ >= std::make_pair(major, minor); }

  std::pair<int, int> version_;
};

}  // namespace ferry::redis
