// The destination's check of the admin behind an incoming Prepare, as its
// migration.authentication says (admin_credentials.h has the source's half):
//   certificate  the peer's trusted certificate is enough; the admin is
//                reported as "host <certificate CN>";
//   kerberos     the Prepare must carry a Kerberos token for this host's
//                service ([kerberos] keytab), bound to the control
//                connection; its client principal must be in migration.admins;
//   credssp      the Prepare must carry a user name and password that PAM
//                (service "ferry") accepts; the user must be in
//                migration.admins.
// A Prepare carrying another mechanism than the one configured is refused,
// naming both.
//
// Thread-safety: Authorize may be called from several connections at once.
#pragma once

#include <memory>
#include <string>

#include "base/result.h"
#include "config/host_settings.h"
#include "protocol/move_authorization.h"
#include "transport/tls.h"

namespace appliance {

class MoveAuthorizer {
 public:
  virtual ~MoveAuthorizer() = default;
  // The admin the move is done for ("alice@FERRY.TEST", "alice", "host
  // b.example"), or kPermissionDenied naming what was wrong: nothing sent,
  // a bad token or password, a principal not in migration.admins.
  // authorization is null when the Prepare carried none.
  virtual base::Result<std::string> Authorize(const MoveAuthorization* authorization,
                                              const transport::TlsPeer& peer) const = 0;
};

// The authorizer host.toml asks for; errors (a missing keytab, ...) name the
// host.toml keys, so ferryd refuses to start rather than refuse every move.
base::Result<std::unique_ptr<MoveAuthorizer>> MakeMoveAuthorizer(const config::HostSettings& host);

}  // namespace appliance
