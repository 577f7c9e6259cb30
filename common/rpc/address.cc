#include "common/rpc/address.h"

#include <arpa/inet.h>

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace ferry::rpc {
namespace {

// Splits `host:port` / `[v6]:port` / `host` and returns the host part without brackets.
absl::string_view HostPart(absl::string_view addr) {
  if (absl::StartsWith(addr, "[")) {
    size_t end = addr.find(']');
    if (end == absl::string_view::npos) return addr;
    return addr.substr(1, end - 1);
  }
  size_t colon = addr.rfind(':');
  // More than one colon without brackets: a bare IPv6 address.
  if (colon != absl::string_view::npos && addr.find(':') == colon) return addr.substr(0, colon);
  return addr;
}

}  // namespace

bool IsLoopbackAddress(absl::string_view listen_addr) {
  absl::string_view addr = absl::StripAsciiWhitespace(listen_addr);
  if (absl::StartsWith(addr, "unix:") || absl::StartsWith(addr, "unix-abstract:")) return true;
  if (absl::StartsWith(addr, "ipv4:")) addr.remove_prefix(5);
  if (absl::StartsWith(addr, "ipv6:")) addr.remove_prefix(5);
  std::string host(HostPart(addr));
  if (absl::EqualsIgnoreCase(host, "localhost")) return true;
  in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    // ::ffff:127.x.y.z
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

}  // namespace ferry::rpc
