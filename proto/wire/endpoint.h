#pragma once

// The one adapter between the API's EndpointSpec and the parsed redis::Endpoint, linked by the
// controller, the agent and the CLI.

#include "absl/status/statusor.h"
#include "common/redis/endpoint.h"
#include "ferry/v1/ferry.pb.h"

namespace ferry::wire {

// The endpoint `spec` describes, with its password (`spec.password` wins over one in the URI).
// INVALID_ARGUMENT, without the password, for a URI that does not parse.
absl::StatusOr<redis::Endpoint> EndpointFromSpec(const ferry::v1::EndpointSpec& spec);

// The EndpointSpec of a parsed endpoint: the URI without its password, the password apart.
ferry::v1::EndpointSpec SpecFromEndpoint(const redis::Endpoint& endpoint);

}  // namespace ferry::wire
