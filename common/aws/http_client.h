#pragma once

// The smallest HTTP/1.1 client that talks to the EC2 instance metadata service: plain TCP, one
// request per connection (`Connection: close`), the whole answer read into memory. Not for
// anything on the internet (no TLS, no redirects).

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace ferry::aws {

struct HttpResponse {
  int status = 0;
  std::string body;
};

// Sends `method path` to `base_url` (`http://host[:port]`, an IPv6 host in brackets) with
// `headers`; every connect, write and read waits at most `timeout`. UNAVAILABLE or
// DEADLINE_EXCEEDED when the server cannot be reached or answers garbage; INVALID_ARGUMENT for a
// malformed base URL. Any HTTP status is a response, not an error.
absl::StatusOr<HttpResponse> SendHttpRequest(
    absl::string_view base_url, absl::string_view method, absl::string_view path,
    const std::vector<std::pair<std::string, std::string>>& headers, absl::Duration timeout);

}  // namespace ferry::aws
