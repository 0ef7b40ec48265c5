// TEMPORARY stand-in for the Kerberos engineer's cli_kerberos.h, which is
// being written in parallel: the same declaration, so http_remote.cc builds
// and is tested until that file is merged. Delete this file and
// cli_kerberos_pending.cc then, include "cli_kerberos.h" in http_remote.cc
// instead and drop cli_kerberos_pending.cc from CMakeLists.txt.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "base/result.h"

namespace appliance {

// "Negotiate <base64 token>": a token from the caller's Kerberos tickets (its
// default credential cache) for service_principal, bound to channel_binding
// (here: SHA-256 of the server's certificate, RFC 5929 tls-server-end-point).
base::Result<std::string> NegotiateHeaderValue(const std::string& service_principal,
                                               std::span<const uint8_t> channel_binding);

}  // namespace appliance
