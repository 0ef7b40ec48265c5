// The admin's Kerberos ticket as ferry sends it to ferryd in
// migration.authentication = "kerberos": "Authorization: Negotiate <token>",
// one GSS token for ferryd's service principal from the admin's credential
// cache (kinit; KRB5CCNAME picks another one), bound to the channel the
// request travels on, so ferryd accepts it there only (and once).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "base/result.h"
#include "cli/http_client.h"

namespace appliance {

// "Negotiate <base64 token>" for service_principal, bound to channel_binding
// (the local socket: LocalApiChannelBinding(); over HTTPS, the binding of
// ferryd's certificate). ccache "" is the default cache (KRB5CCNAME).
// Errors are auth's: "no Kerberos credentials: run kinit", an unknown
// service principal, an unreachable KDC.
base::Result<std::string> NegotiateAuthorization(const std::string& service_principal,
                                                 std::span<const uint8_t> channel_binding,
                                                 const std::string& ccache = "");

// The bytes of common/api_binding.h's kLocalApiChannelBinding.
std::span<const uint8_t> LocalApiChannelBinding();

// The header lines for a move-vm request to the ferryd behind client: asks
// it (GET /v1/host) for its mode, and in kerberos mode makes the token for
// its service principal. Without a ticket it returns none and says why on
// stderr; ferryd's refusal then says to run kinit.
std::vector<std::string> MoveAuthorizationHeaders(HttpClient& client);

}  // namespace appliance
