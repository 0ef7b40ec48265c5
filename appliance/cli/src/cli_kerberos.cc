#include "cli/cli_kerberos.h"

#include <iostream>

#include <nlohmann/json.hpp>

#include "auth/kerberos.h"
#include "base/base64.h"
#include "common/api_binding.h"

namespace appliance {

base::Result<std::string> NegotiateAuthorization(const std::string& service_principal,
                                                 std::span<const uint8_t> channel_binding,
                                                 const std::string& ccache) {
  ASSIGN_OR_RETURN(auth::KerberosCredential cred, auth::KerberosCredential::FromCcache(ccache));
  ASSIGN_OR_RETURN(std::vector<uint8_t> token,
                   auth::InitiateContext(cred, service_principal, channel_binding));
  return "Negotiate " + base::Base64Encode(token);
}

std::span<const uint8_t> LocalApiChannelBinding() {
  return {reinterpret_cast<const uint8_t*>(kLocalApiChannelBinding.data()),
          kLocalApiChannelBinding.size()};
}

std::vector<std::string> MoveAuthorizationHeaders(HttpClient& client) {
  constexpr long kTimeoutSeconds = 30;
  auto host = client.Request("GET", "/v1/host", nullptr, kTimeoutSeconds);
  // An unreachable or failing ferryd answers the move request the same way.
  if (!host || host->status != 200) return {};
  auto json = nlohmann::json::parse(host->body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return {};
  const auto mode = json.value("/migration/authentication"_json_pointer, std::string());
  if (mode != "kerberos") return {};
  const auto principal = json.value("/kerberos/service_principal"_json_pointer, std::string());
  auto authorization = NegotiateAuthorization(principal, LocalApiChannelBinding());
  if (!authorization) {
    std::cerr << "ferry: sending no Kerberos ticket for " << principal << ": "
              << authorization.error().message() << "\n";
    return {};
  }
  return {"Authorization: " + *authorization};
}

}  // namespace appliance
