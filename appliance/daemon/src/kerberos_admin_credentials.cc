#include "kerberos_admin_credentials.h"

namespace appliance {

KerberosAdminCredentials::KerberosAdminCredentials(auth::KerberosCredential cred, std::string realm,
                                                   std::shared_ptr<const KerberosAcceptor> acceptor)
    : admin_(cred.principal()),
      realm_(std::move(realm)),
      acceptor_(std::move(acceptor)),
      cred_(std::move(cred)) {}

base::Result<std::vector<uint8_t>> KerberosAdminCredentials::ByProtocolTransition(
    const std::string& target, const transport::TlsPeer& peer, const base::Error& refused) const {
  auto impersonated = acceptor_->Impersonate(admin_);
  base::Result<std::vector<uint8_t>> token =
      impersonated ? auth::InitiateContext(*impersonated, target, peer.channel_binding)
                   : base::Result<std::vector<uint8_t>>(impersonated.error());
  if (token) return token;
  return base::Error(refused.code(), refused.message() +
                                         "; acting for the admin by protocol transition failed "
                                         "too: " +
                                         token.error().message());
}

std::string KerberosAdminCredentials::TargetPrincipal(const std::string& subject,
                                                      const std::string& realm) {
  std::string target = "ferry-migration/" + subject;
  return realm.empty() ? target : target + "@" + realm;
}

base::Result<MoveAuthorization> KerberosAdminCredentials::Authorize(
    const transport::TlsPeer& peer) const {
  if (peer.subject.empty())
    return base::Error(base::Code::kFailedPrecondition,
                       "the destination's certificate (" + peer.fingerprint +
                           ") has no common name: with migration.authentication = \"kerberos\" "
                           "its CN must be its Kerberos host name (ferry-migration/<CN>)");
  const std::string target = TargetPrincipal(peer.subject, realm_);
  base::Result<std::vector<uint8_t>> token = [&] {
    base::MutexLock lock(mu_);
    return auth::InitiateContext(cred_, target, peer.channel_binding);
  }();
  bool delegated = [&] {
    base::MutexLock lock(mu_);
    return !cred_.protocol_transition();
  }();
  if (!token && token.error().code() == base::Code::kPermissionDenied && delegated &&
      acceptor_ != nullptr)
    token = ByProtocolTransition(target, peer, token.error());
  if (!token) {
    if (token.error().code() != base::Code::kNotFound) return token.error();
    // The name came from the certificate: say so, it is the likely mistake.
    return base::Error(base::Code::kNotFound, token.error().message() +
                                                  " (the name is ferry-migration/ + the CN of the "
                                                  "destination's certificate, which must be its "
                                                  "Kerberos host name)");
  }
  MoveAuthorization authorization;
  authorization.mechanism = AuthorizationMechanism::kKerberos;
  authorization.kerberos_token = *std::move(token);
  return authorization;
}

}  // namespace appliance
