#include "kerberos_acceptor.h"

#include "auth/local_accounts.h"

namespace appliance {

std::string RealmOf(const std::string& principal) {
  size_t at = principal.rfind('@');
  return at == std::string::npos ? "" : principal.substr(at + 1);
}

bool IsKerberosAdmin(const std::string& principal, const std::string& realm,
                     const std::vector<std::string>& admins) {
  for (const std::string& admin : admins)
    if (admin == principal) return true;
  size_t at = principal.rfind('@');
  if (at == std::string::npos || realm.empty() || principal.substr(at + 1) != realm) return false;
  // A principal of our own realm is also the local name host.toml may list
  // ("alice", or a member of "@ferry-admins" through NSS/winbind).
  return auth::IsAuthorized(principal.substr(0, at), admins);
}

base::Result<std::shared_ptr<KerberosAcceptor>> KerberosAcceptor::Open(
    const config::HostSettings& host) {
  const config::KerberosSettings& k = host.kerberos;
  auto cred = auth::KerberosCredential::FromKeytab(k.keytab, k.service_principal);
  if (!cred)
    return base::Error(cred.error().code(),
                       host.source_path + ": [kerberos] keytab = \"" + k.keytab +
                           "\", service_principal = \"" + k.service_principal +
                           "\": cannot use them (migration.authentication = \"kerberos\"): " +
                           cred.error().message(),
                       cred.error().sys_errno());
  return std::shared_ptr<KerberosAcceptor>(new KerberosAcceptor(*std::move(cred), host));
}

KerberosAcceptor::KerberosAcceptor(auth::KerberosCredential cred, const config::HostSettings& host)
    : cred_(std::move(cred)),
      service_principal_(host.kerberos.service_principal),
      realm_(RealmOf(host.kerberos.service_principal)),
      admins_(host.admins) {}

base::Result<auth::AcceptedContext> KerberosAcceptor::Accept(
    std::span<const uint8_t> token, std::span<const uint8_t> channel_binding) const {
  base::MutexLock lock(mu_);
  return auth::AcceptContext(cred_, token, channel_binding);
}

base::Result<auth::KerberosCredential> KerberosAcceptor::Impersonate(
    const std::string& principal) const {
  base::MutexLock lock(mu_);
  return cred_.Impersonate(principal);
}

base::Status KerberosAcceptor::CheckAdmin(const std::string& principal,
                                          const std::string& what) const {
  if (IsKerberosAdmin(principal, realm_, admins_)) return base::Ok();
  std::string list;
  for (const std::string& admin : admins_) list += (list.empty() ? "" : ", ") + admin;
  return base::Error(base::Code::kPermissionDenied,
                     principal + " may not " + what + " (migration.admins: " + list + ")");
}

}  // namespace appliance
