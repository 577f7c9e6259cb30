#pragma once

// The logging flags of ferry-controller and ferry-agent: --log-format text|json and
// --log-level debug|info|warning|error (common/base/logging.h). With JSON lines, gRPC's own
// lines go through ferry's log too.

#include <string>

#include "absl/status/status.h"

namespace ferry::rpc {

// Applies `--log-format VALUE` or `--log-level VALUE` (`flag` is one of the two); INVALID_ARGUMENT
// for a value that is neither.
absl::Status ApplyLogFlag(const std::string& flag, const std::string& value);

}  // namespace ferry::rpc
