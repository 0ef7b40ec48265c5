// This host's Kerberos service identity in migration.authentication =
// "kerberos": the keytab credential of [kerberos] service_principal, made
// once when ferryd starts, and the migration.admins check for the principals
// it accepts. Shared by the API authenticator (tokens from `ferry` on the
// local socket or over HTTPS) and the move authorizer (tokens a source sends
// with its Prepare).
//
// Thread-safety: every member may be called from several threads at once; a
// GSS credential may be used by one thread at a time (auth/kerberos.h), so
// the calls that use it are serialized on mu_.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "auth/kerberos.h"
#include "base/mutex.h"
#include "base/result.h"
#include "config/host_settings.h"

namespace appliance {

// "alice@FERRY.TEST" -> "FERRY.TEST"; "" when there is no realm.
std::string RealmOf(const std::string& principal);

// Whether principal may act as an admin: an entry equal to the principal, or,
// when the principal belongs to `realm` (this host's), its user part as a
// local name (auth::IsAuthorized: "alice", "@group").
bool IsKerberosAdmin(const std::string& principal, const std::string& realm,
                     const std::vector<std::string>& admins);

class KerberosAcceptor {
 public:
  // FromKeytab([kerberos] keytab, service_principal); errors name both keys,
  // so ferryd refuses to start rather than refuse every move.
  static base::Result<std::shared_ptr<KerberosAcceptor>> Open(const config::HostSettings& host);

  // AcceptContext with the service's keys; errors are auth's (codes as in
  // auth/kerberos.h).
  base::Result<auth::AcceptedContext> Accept(std::span<const uint8_t> token,
                                             std::span<const uint8_t> channel_binding) const;
  // S4U2Self for principal (protocol transition).
  base::Result<auth::KerberosCredential> Impersonate(const std::string& principal) const;

  // kPermissionDenied "<principal> may not <what> (migration.admins: …)"
  // unless IsKerberosAdmin.
  base::Status CheckAdmin(const std::string& principal, const std::string& what) const;

  const std::string& service_principal() const { return service_principal_; }
  // The realm of service_principal ("" if it names none: the default realm).
  const std::string& realm() const { return realm_; }

 private:
  KerberosAcceptor(auth::KerberosCredential cred, const config::HostSettings& host);

  mutable base::Mutex mu_;
  auth::KerberosCredential cred_ GUARDED_BY(mu_);
  std::string service_principal_;
  std::string realm_;
  std::vector<std::string> admins_;
};

}  // namespace appliance
