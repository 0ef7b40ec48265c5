// The admin behind an API request, as the source ferryd holds them for the
// length of a move: who (for logs and the job record) and how to prove it to
// a destination (MoveAuthorization in the Prepare). Made by the API layer
// from the request's authentication (api_caller.h) and handed to
// LiveMoveService with the move's arguments.
//
// migration.authentication decides the kind:
//   certificate  none: the destination trusts this host's certificate;
//   kerberos     a delegated Kerberos credential of the admin (constrained
//                delegation, S4U2Proxy to the destination's service);
//   credssp      the admin's user name and password from a log-on at this
//                host, delegated over TLS (the destination checks them).
#pragma once

#include <string>

#include "base/result.h"
#include "protocol/move_authorization.h"
#include "transport/tls.h"

namespace appliance {

class AdminCredentials {
 public:
  virtual ~AdminCredentials() = default;
  // "alice@FERRY.TEST" (Kerberos) or "alice" (a local account).
  virtual const std::string& admin() const = 0;
  // The proof for a Prepare to the destination that presented `peer` on
  // the control connection: bound to that connection (peer.channel_binding)
  // where the mechanism allows. Errors say what is missing and what to do.
  virtual base::Result<MoveAuthorization> Authorize(const transport::TlsPeer& peer) const = 0;
};

}  // namespace appliance
