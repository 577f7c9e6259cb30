#include "proto/wire/endpoint.h"

#include "common/base/status_macros.h"

namespace ferry::wire {

absl::StatusOr<redis::Endpoint> EndpointFromSpec(const ferry::v1::EndpointSpec& spec) {
  FERRY_ASSIGN_OR_RETURN(redis::Endpoint endpoint,
                         redis::ParseEndpointUri(spec.uri(), spec.password()));
  if (!spec.password().empty()) endpoint.password = spec.password();
  if (!spec.ca_file().empty()) endpoint.ca_file = spec.ca_file();
  if (spec.insecure()) endpoint.verify_peer = false;
  return endpoint;
}

ferry::v1::EndpointSpec SpecFromEndpoint(const redis::Endpoint& endpoint) {
  redis::Endpoint no_password = endpoint;
  no_password.password.clear();
  ferry::v1::EndpointSpec out;
  out.set_uri(no_password.Redacted());
  out.set_password(endpoint.password);
  out.set_ca_file(endpoint.ca_file);
  out.set_insecure(!endpoint.verify_peer);
  return out;
}

}  // namespace ferry::wire
