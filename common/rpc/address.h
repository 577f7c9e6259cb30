#pragma once

#include "absl/strings/string_view.h"

namespace ferry::rpc {

// Whether a gRPC listen address can only be reached from this machine: `localhost:P`,
// `127.x.y.z:P`, `[::1]:P`, `unix:...`. Wildcards (`0.0.0.0`, `[::]`), host names and
// other addresses are not loopback.
bool IsLoopbackAddress(absl::string_view listen_addr);

}  // namespace ferry::rpc
