// The per-mode halves of migration.authentication (move_authorizer.h,
// api_caller.h): each mode's file makes its destination check and its API
// authenticator; authentication_modes.cc picks by host.toml.
#pragma once

#include <memory>

#include "base/result.h"
#include "config/host_settings.h"
#include "daemon/api_caller.h"
#include "daemon/move_authorizer.h"

namespace appliance {

// kerberos_authentication.cc: [kerberos] keytab and service principal.
base::Result<std::unique_ptr<MoveAuthorizer>> MakeKerberosMoveAuthorizer(
    const config::HostSettings& host);
base::Result<std::unique_ptr<ApiAuthenticator>> MakeKerberosApiAuthenticator(
    const config::HostSettings& host);

// credential_authentication.cc: local accounts (PAM) and log-ons; logons
// null: none kept (--as is then refused).
base::Result<std::unique_ptr<MoveAuthorizer>> MakeCredentialMoveAuthorizer(
    const config::HostSettings& host);
base::Result<std::unique_ptr<ApiAuthenticator>> MakeCredentialApiAuthenticator(
    const config::HostSettings& host, std::shared_ptr<LogonSessions> logons);

}  // namespace appliance
