// PLACEHOLDER until the kerberos mode lands in this session: refuses to start.
#include "authentication_modes.h"

namespace appliance {

base::Result<std::unique_ptr<MoveAuthorizer>> MakeKerberosMoveAuthorizer(
    const config::HostSettings&) {
  return base::Error(base::Code::kUnimplemented, "kerberos authentication is being built");
}
base::Result<std::unique_ptr<ApiAuthenticator>> MakeKerberosApiAuthenticator(
    const config::HostSettings&) {
  return base::Error(base::Code::kUnimplemented, "kerberos authentication is being built");
}

}  // namespace appliance
