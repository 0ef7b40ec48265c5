// IP literal parsing and formatting for the TCP code.
#pragma once

#include <sys/socket.h>

#include <string>

#include "base/result.h"
#include "transport/tcp.h"

namespace transport {

// "host:port" for messages, with brackets around IPv6 ("[::1]:5").
std::string HostPort(const std::string& host, uint16_t port);

// Parses an IPv4 or IPv6 literal into a sockaddr_storage with port set.
// kInvalidArgument if host is not a literal.
base::Status ParseIpLiteral(const std::string& host, uint16_t port, sockaddr_storage& out,
                            socklen_t& len);

// Converts a kernel address into a PeerAddress (text included).
base::Result<PeerAddress> ToPeerAddress(const sockaddr_storage& addr);

}  // namespace transport
