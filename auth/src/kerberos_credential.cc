// KerberosCredential: acquiring credentials from a ccache or a keytab, and
// S4U2Self (protocol transition).
#include <krb5/krb5.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <utility>

#include "auth/kerberos.h"
#include "kerberos_gss.h"

namespace auth {
namespace {

using internal::GssError;
using internal::GssName;
using internal::Situation;

gss_OID_set_desc KrbMechSet() { return gss_OID_set_desc{1, const_cast<gss_OID>(gss_mech_krb5)}; }

// A process-unique MEMORY cache for a keytab credential's TGT: never the
// user's default cache, and gone with the process.
std::string NewMemoryCcache() {
  static std::atomic<uint64_t> counter{0};
  return "MEMORY:ferry-auth-" + std::to_string(getpid()) + "-" + std::to_string(++counter);
}

void DestroyCcache(const std::string& name) {
  krb5_context context = nullptr;
  if (krb5_init_context(&context) != 0) return;
  krb5_ccache cc = nullptr;
  if (krb5_cc_resolve(context, name.c_str(), &cc) == 0) krb5_cc_destroy(context, cc);
  krb5_free_context(context);
}

// The principal a cache belongs to, read from the cache itself: GSS will
// not name the owner of a credential whose tickets expired.
std::string CcachePrincipal(const std::string& name) {
  krb5_context context = nullptr;
  if (krb5_init_context(&context) != 0) return "";
  std::string result;
  krb5_ccache cc = nullptr;
  krb5_principal principal = nullptr;
  char* text = nullptr;
  if (krb5_cc_resolve(context, name.c_str(), &cc) == 0 &&
      krb5_cc_get_principal(context, cc, &principal) == 0 &&
      krb5_unparse_name(context, principal, &text) == 0) {
    result = text;
  }
  krb5_free_unparsed_name(context, text);
  krb5_free_principal(context, principal);
  if (cc != nullptr) krb5_cc_close(context, cc);
  krb5_free_context(context);
  return result;
}

}  // namespace

KerberosCredential::KerberosCredential(gss_cred_id_struct* cred, std::string principal,
                                       std::string impersonator, std::string memory_ccache,
                                       bool protocol_transition)
    : cred_(cred),
      principal_(std::move(principal)),
      impersonator_(std::move(impersonator)),
      memory_ccache_(std::move(memory_ccache)),
      protocol_transition_(protocol_transition) {}

KerberosCredential::KerberosCredential(KerberosCredential&& other) noexcept
    : cred_(std::exchange(other.cred_, nullptr)),
      principal_(std::move(other.principal_)),
      impersonator_(std::move(other.impersonator_)),
      memory_ccache_(std::exchange(other.memory_ccache_, "")),
      protocol_transition_(other.protocol_transition_),
      keytab_(std::move(other.keytab_)) {}

KerberosCredential& KerberosCredential::operator=(KerberosCredential&& other) noexcept {
  if (this != &other) {
    Release();
    cred_ = std::exchange(other.cred_, nullptr);
    principal_ = std::move(other.principal_);
    impersonator_ = std::move(other.impersonator_);
    memory_ccache_ = std::exchange(other.memory_ccache_, "");
    protocol_transition_ = other.protocol_transition_;
    keytab_ = std::move(other.keytab_);
  }
  return *this;
}

KerberosCredential::~KerberosCredential() { Release(); }

void KerberosCredential::Release() {
  if (cred_ != nullptr) {
    OM_uint32 minor = 0;
    gss_cred_id_t cred = cred_;
    gss_release_cred(&minor, &cred);
    cred_ = nullptr;
  }
  if (!memory_ccache_.empty()) DestroyCcache(memory_ccache_);
  memory_ccache_.clear();
}

base::Result<KerberosCredential> KerberosCredential::FromCcache(const std::string& ccache_name) {
  Situation what{.operation = "use Kerberos credentials",
                 .client = CcachePrincipal(ccache_name),
                 .ccache = ccache_name};
  gss_key_value_element_desc element{"ccache", ccache_name.c_str()};
  // "" is the default cache (KRB5CCNAME, else krb5.conf's): no store entry.
  gss_key_value_set_desc store{ccache_name.empty() ? 0u : 1u, &element};
  gss_OID_set_desc mechs = KrbMechSet();
  gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
  OM_uint32 minor = 0, lifetime = 0;
  OM_uint32 major = gss_acquire_cred_from(&minor, GSS_C_NO_NAME, GSS_C_INDEFINITE, &mechs,
                                          GSS_C_INITIATE, &store, &cred, nullptr, &lifetime);
  if (GSS_ERROR(major)) return GssError(what, major, minor);
  std::string principal = internal::CredentialPrincipal(cred);
  KerberosCredential result(cred, principal.empty() ? what.client : principal, "", "", false);
  // MIT hands out a credential whose TGT has expired; say so now rather than
  // at the first InitiateContext.
  if (lifetime == 0) {
    return base::Error(base::Code::kUnauthenticated, "use Kerberos credentials: the tickets of " +
                                                         result.principal() + " in " + ccache_name +
                                                         " have expired: run kinit again");
  }
  return result;
}

base::Result<KerberosCredential> KerberosCredential::FromKeytab(const std::string& keytab,
                                                                const std::string& principal) {
  Situation what{.operation = "use keytab credentials",
                 .client = principal,
                 .service = principal,
                 .keytab = keytab};
  if (access(keytab.c_str(), R_OK) != 0) {
    return base::Error(base::Code::kNotFound,
                       "use keytab credentials: keytab " + keytab + " of " + principal +
                           " cannot be read (export it with samba-tool domain exportkeytab)",
                       errno);
  }
  ASSIGN_OR_RETURN(GssName name, internal::ImportPrincipal(principal));
  std::string ccache = NewMemoryCcache();
  // "keytab" serves accepting, "client_keytab" fetches the TGT for
  // initiating (and for S4U), kept in the MEMORY cache.
  gss_key_value_element_desc elements[] = {
      {"keytab", keytab.c_str()}, {"client_keytab", keytab.c_str()}, {"ccache", ccache.c_str()}};
  gss_key_value_set_desc store{3, elements};
  gss_OID_set_desc mechs = KrbMechSet();
  gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
  OM_uint32 minor = 0;
  OM_uint32 major = gss_acquire_cred_from(&minor, name.get(), GSS_C_INDEFINITE, &mechs, GSS_C_BOTH,
                                          &store, &cred, nullptr, nullptr);
  if (GSS_ERROR(major)) {
    DestroyCcache(ccache);
    return GssError(what, major, minor);
  }
  KerberosCredential result(cred, principal, "", ccache, false);
  result.keytab_ = keytab;
  return result;
}

base::Result<KerberosCredential> KerberosCredential::Impersonate(
    const std::string& user_principal) const {
  Situation what{.operation = "S4U2Self for " + user_principal,
                 .client = user_principal,
                 .service = principal_,
                 .impersonator = principal_,
                 .protocol_transition = true};
  ASSIGN_OR_RETURN(GssName user, internal::ImportPrincipal(user_principal));
  gss_OID_set_desc mechs = KrbMechSet();
  gss_cred_id_t out = GSS_C_NO_CREDENTIAL;
  OM_uint32 minor = 0;
  OM_uint32 major = gss_acquire_cred_impersonate_name(
      &minor, cred_, user.get(), GSS_C_INDEFINITE, &mechs, GSS_C_INITIATE, &out, nullptr, nullptr);
  if (GSS_ERROR(major)) return GssError(what, major, minor);
  return KerberosCredential(out, internal::CredentialPrincipal(out), principal_, "", true);
}

}  // namespace auth
