#include "kerberos_acceptor.h"

#include <cctype>

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

namespace {

// The names the keytab may hold this host's keys under: the service
// principal itself, or its computer account ("ferry-migration/host1.d@R" ->
// "host1$@R", and "HOST1$@R": keytab names are case-sensitive, AD account
// names are not). An AD KDC does not let a service principal log on (AS-REQ)
// — only its account can — and the credential also initiates (S4U2Self, and
// S4U2Proxy for a delegated admin), so the account is what works there.
std::vector<std::string> KeytabNames(const std::string& service_principal) {
  std::vector<std::string> names = {service_principal};
  size_t slash = service_principal.find('/');
  size_t at = service_principal.rfind('@');
  if (slash == std::string::npos || at == std::string::npos || at < slash) return names;
  std::string host = service_principal.substr(slash + 1, at - slash - 1);
  std::string label = host.substr(0, host.find('.'));
  std::string realm = service_principal.substr(at);
  std::string upper = label;
  for (char& c : upper) c = char(std::toupper(static_cast<unsigned char>(c)));
  names.push_back(label + "$" + realm);
  if (upper != label) names.push_back(upper + "$" + realm);
  return names;
}

}  // namespace

base::Result<std::shared_ptr<KerberosAcceptor>> KerberosAcceptor::Open(
    const config::HostSettings& host) {
  const config::KerberosSettings& k = host.kerberos;
  std::string tried;
  base::Code code = base::Code::kNotFound;
  for (const std::string& name : KeytabNames(k.service_principal)) {
    auto cred = auth::KerberosCredential::FromKeytab(k.keytab, name);
    if (cred)
      return std::shared_ptr<KerberosAcceptor>(new KerberosAcceptor(*std::move(cred), host));
    if (tried.empty()) code = cred.error().code();
    tried +=
        (tried.empty() ? "" : "; ") + std::string("as ") + name + ": " + cred.error().message();
  }
  return base::Error(code, host.source_path + ": [kerberos] keytab = \"" + k.keytab +
                               "\", service_principal = \"" + k.service_principal +
                               "\": cannot use them (migration.authentication = \"kerberos\"; "
                               "the keytab must hold the keys of the service's computer "
                               "account): " +
                               tried);
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
