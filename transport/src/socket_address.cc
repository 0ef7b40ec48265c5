#include "socket_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace transport {

std::string HostPort(const std::string& host, uint16_t port) {
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

base::Status ParseIpLiteral(const std::string& host, uint16_t port, sockaddr_storage& out,
                            socklen_t& len) {
  std::memset(&out, 0, sizeof out);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof(sockaddr_in);
    return base::Ok();
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out);
  if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof(sockaddr_in6);
    return base::Ok();
  }
  return base::Error(base::Code::kInvalidArgument, "'" + host + "' is not an IPv4 or IPv6 address");
}

base::Result<PeerAddress> ToPeerAddress(const sockaddr_storage& addr) {
  PeerAddress p;
  p.family = addr.ss_family;
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&addr);
    std::memcpy(p.address.data(), &v4->sin_addr, 4);
    p.port = ntohs(v4->sin_port);
    ::inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
  } else if (addr.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    std::memcpy(p.address.data(), &v6->sin6_addr, 16);
    p.port = ntohs(v6->sin6_port);
    ::inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
  } else {
    return base::Error(base::Code::kInvalidArgument,
                       "not an IP socket (address family " + std::to_string(addr.ss_family) + ")");
  }
  p.text = HostPort(text, p.port);
  return p;
}

}  // namespace transport
