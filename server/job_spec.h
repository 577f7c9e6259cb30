#pragma once

// Checks and transformations of a submitted JobSpec, and the one place where its passwords are
// removed for answers and scrubbed out of messages.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ferry/v1/ferry.pb.h"

namespace ferry::server {

// Validates `spec` for SubmitJob and normalizes it: a password inside a URI moves into the
// `password` field and out of the URI. INVALID_ARGUMENT with a message that contains no password.
absl::Status NormalizeJobSpec(ferry::v1::JobSpec* spec);

// `spec` with both passwords cleared: what answers may show.
ferry::v1::JobSpec RedactedSpec(const ferry::v1::JobSpec& spec);

// `message` with every occurrence of the spec's passwords replaced by `***` (a last line of
// defence for messages that come from elsewhere, such as agents and the planner).
std::string ScrubSecrets(absl::string_view message, const ferry::v1::JobSpec& spec);

}  // namespace ferry::server
