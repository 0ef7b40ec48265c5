// The admin's Kerberos credential at the source for the length of a move
// (admin_credentials.h, migration.authentication = "kerberos"): either the
// credential AcceptContext delegated when the admin's `ferry` token reached
// this host (Kerberos-only constrained delegation), or one this host got by
// S4U2Self (protocol transition). Either way this host's account acts for the
// admin toward the destination's service, and the KDC decides whether it may
// (S4U2Proxy, checked against `samba-tool delegation add-service`).
//
// The destination's Kerberos name comes from its certificate: its CN must be
// the host name in its service principal, ferry-migration/<CN>@<our realm>
// (docs/kerberos.md).
//
// Thread-safety: Authorize may be called from any thread; calls are
// serialized (a GSS credential is used by one thread at a time).
#pragma once

#include <memory>
#include <string>

#include "auth/kerberos.h"
#include "base/mutex.h"
#include "daemon/admin_credentials.h"
#include "kerberos_acceptor.h"

namespace appliance {

class KerberosAdminCredentials : public AdminCredentials {
 public:
  // realm: of this host's service principal; destinations are in it.
  // acceptor (may be null): this host's own credential, for protocol
  // transition when `cred` was delegated but the KDC refuses to let it be
  // used (a ticket that was not forwardable still yields a delegated
  // credential, which S4U2Proxy then refuses). Shared; lives as long as this.
  KerberosAdminCredentials(auth::KerberosCredential cred, std::string realm,
                           std::shared_ptr<const KerberosAcceptor> acceptor = nullptr);

  const std::string& admin() const override { return admin_; }
  // A token for ferry-migration/<peer.subject>@<realm>, bound to
  // peer.channel_binding. A KDC refusal names this host's account, the
  // destination's service and the samba-tool command (auth's message).
  base::Result<MoveAuthorization> Authorize(const transport::TlsPeer& peer) const override;

  // "ferry-migration/host2.ferry.test@FERRY.TEST" for subject
  // "host2.ferry.test" (no "@" part when realm is "").
  static std::string TargetPrincipal(const std::string& subject, const std::string& realm);

 private:
  // The token by protocol transition (S4U2Self with acceptor_), or
  // `refused` extended by why that failed too.
  base::Result<std::vector<uint8_t>> ByProtocolTransition(const std::string& target,
                                                          const transport::TlsPeer& peer,
                                                          const base::Error& refused) const;

  std::string admin_;
  std::string realm_;
  std::shared_ptr<const KerberosAcceptor> acceptor_;
  mutable base::Mutex mu_;
  auth::KerberosCredential cred_ GUARDED_BY(mu_);
};

}  // namespace appliance
