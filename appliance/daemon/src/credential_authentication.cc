// PLACEHOLDER until the credential mode lands in this session: refuses to start.
#include "authentication_modes.h"

namespace appliance {

base::Result<std::unique_ptr<MoveAuthorizer>> MakeCredentialMoveAuthorizer(
    const config::HostSettings&) {
  return base::Error(base::Code::kUnimplemented, "credential authentication is being built");
}
base::Result<std::unique_ptr<ApiAuthenticator>> MakeCredentialApiAuthenticator(
    const config::HostSettings&) {
  return base::Error(base::Code::kUnimplemented, "credential authentication is being built");
}

}  // namespace appliance
