// GSS/krb5 status -> base::Error. The krb5 error inside the minor status says
// what went wrong far more precisely than the GSS major code, so it is looked
// at first; every message names the principals involved and what to do, and
// ends with GSS's own text for the record.
#include <krb5/krb5.h>

#include <cerrno>
#include <string>

#include "kerberos_gss.h"

namespace auth::internal {
namespace {

std::string DisplayStatus(OM_uint32 code, int type) {
  std::string text;
  OM_uint32 context = 0;
  do {
    OM_uint32 minor = 0;
    GssBuffer buf;
    gss_OID mech = type == GSS_C_MECH_CODE ? const_cast<gss_OID>(gss_mech_krb5) : GSS_C_NO_OID;
    if (gss_display_status(&minor, code, type, mech, &context, buf.out()) != GSS_S_COMPLETE) break;
    if (!text.empty()) text += "; ";
    text += buf.str();
  } while (context != 0);
  return text;
}

std::string Or(const std::string& s, std::string_view fallback) {
  return s.empty() ? std::string(fallback) : s;
}

// "ferry-migration/host2.ferry.test@FERRY.TEST" -> "ferry-migration/host2.ferry.test",
// the form samba-tool delegation takes.
std::string WithoutRealm(const std::string& principal) {
  return principal.substr(0, principal.rfind('@'));
}
// "host1$@FERRY.TEST" -> "host1$".
std::string Account(const std::string& principal) { return WithoutRealm(principal); }

base::Error DelegationRefused(const Situation& w) {
  std::string account = Account(w.impersonator);
  std::string text = "the KDC refused to let " + w.impersonator + " act for " + w.client +
                     " toward " + w.service + " (constrained delegation not allowed)";
  if (w.protocol_transition) {
    text += ": protocol transition needs both `samba-tool delegation for-any-protocol '" + account +
            "' on` and `samba-tool delegation add-service '" + account + "' " +
            WithoutRealm(w.service) + "`";
  } else {
    text += ": allow it with `samba-tool delegation add-service '" + account + "' " +
            WithoutRealm(w.service) + "` (Kerberos-only); " + w.client +
            "'s ticket must also be forwardable (forwardable = true in krb5.conf, or kinit -f)";
  }
  return base::Error(base::Code::kPermissionDenied, text);
}

// The error for a recognised krb5 code, or nullopt.
std::optional<base::Error> FromKrb5(const Situation& w, krb5_error_code code) {
  using base::Code;
  const std::string client = Or(w.client, "the client");
  const std::string service = Or(w.service, "the service");
  switch (code) {
    case KRB5KRB_AP_ERR_SKEW:
      return base::Error(Code::kUnauthenticated,
                         "clock skew too large between this host, the KDC and the peer (" + client +
                             " -> " + service + "): synchronise the clocks (NTP)");
    case KRB5KRB_AP_ERR_TKT_EXPIRED:
    case KRB5KDC_ERR_TGT_REVOKED:
      return base::Error(Code::kUnauthenticated,
                         "the Kerberos ticket of " + client + " has expired: run kinit again");
    case KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN:
      return base::Error(Code::kNotFound,
                         "service principal " + service +
                             " is unknown to the KDC: check the host name, or add the SPN to "
                             "the host's computer account (samba-tool spn add)");
    case KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN:
      return base::Error(Code::kUnauthenticated,
                         "client principal " + client + " is unknown to the KDC");
    case KRB5KDC_ERR_BADOPTION:
    case KRB5KDC_ERR_POLICY:
      if (!w.impersonator.empty()) return DelegationRefused(w);
      return std::nullopt;
    case KRB5KRB_AP_ERR_REPEAT:
      return base::Error(Code::kPermissionDenied, "replayed token: this token of " + client +
                                                      " for " + service +
                                                      " was already accepted once");
    case KRB5_KT_NOTFOUND:
    case KRB5_KT_KVNONOTFOUND:
      return base::Error(Code::kNotFound,
                         "keytab " + Or(w.keytab, "(default)") + " has no key for " + service +
                             " (missing, or another key version): export it again with "
                             "samba-tool domain exportkeytab");
    case KRB5KRB_AP_ERR_BAD_INTEGRITY:
    case KRB5KRB_AP_ERR_MODIFIED:
    case KRB5KRB_AP_ERR_BADKEYVER:
    case KRB5KRB_AP_ERR_NOKEY:
    case KRB5KRB_AP_ERR_NOT_US:
      return base::Error(Code::kUnauthenticated,
                         "the ticket " + (w.client.empty() ? "" : "of " + w.client + " ") + "for " +
                             service + " does not decrypt with the keys in keytab " +
                             Or(w.keytab, "(default)") +
                             ": the keytab belongs to another account or is outdated (password "
                             "changed); export it again with samba-tool domain exportkeytab");
    case KRB5KRB_AP_WRONG_PRINC:
      return base::Error(Code::kUnauthenticated,
                         "the token was made for another service than " + service);
    case KRB5KDC_ERR_PREAUTH_FAILED:
    case KRB5_PREAUTH_FAILED:
      return base::Error(
          Code::kUnauthenticated,
          "the KDC refused the key of " + client +
              (w.keytab.empty() ? std::string()
                                : " from keytab " + w.keytab + " (outdated? export it again)"));
    case KRB5_FCC_NOFILE:
    case KRB5_CC_NOTFOUND:
    case KRB5_CC_NOSUPP:
      return base::Error(Code::kUnauthenticated,
                         "no Kerberos credentials" +
                             (w.ccache.empty() ? std::string() : " in " + w.ccache) +
                             ": run kinit");
    case KRB5_KDC_UNREACH:
    case KRB5_REALM_CANT_RESOLVE:
      return base::Error(Code::kUnavailable,
                         "cannot reach a KDC: check the realm's kdc in the krb5.conf named by "
                         "KRB5_CONFIG");
    case ENOENT:
      if (!w.keytab.empty())
        return base::Error(Code::kNotFound, "keytab " + w.keytab + " does not exist", ENOENT);
      return std::nullopt;
    default: return std::nullopt;
  }
}

std::optional<base::Error> FromMajor(const Situation& w, OM_uint32 major) {
  using base::Code;
  switch (GSS_ROUTINE_ERROR(major)) {
    case GSS_S_BAD_BINDINGS:
      return base::Error(Code::kPermissionDenied, "token bound to another TLS channel (relayed?)");
    case GSS_S_CREDENTIALS_EXPIRED:
      return base::Error(Code::kUnauthenticated, "the Kerberos credentials of " +
                                                     Or(w.client, "the client") +
                                                     " have expired: run kinit again");
    case GSS_S_NO_CRED:
      return base::Error(Code::kUnauthenticated,
                         "no Kerberos credentials" +
                             (w.ccache.empty() ? std::string() : " in " + w.ccache) +
                             ": run kinit");
    case GSS_S_DEFECTIVE_TOKEN:
      return base::Error(Code::kInvalidArgument, "malformed Kerberos token");
    default: break;
  }
  if (major & GSS_S_DUPLICATE_TOKEN) {
    return base::Error(Code::kPermissionDenied, "replayed token: this token of " +
                                                    Or(w.client, "the client") +
                                                    " was already accepted once");
  }
  return std::nullopt;
}

}  // namespace

base::Error GssError(const Situation& what, OM_uint32 major, OM_uint32 minor) {
  std::optional<base::Error> error = FromKrb5(what, static_cast<krb5_error_code>(minor));
  if (!error) error = FromMajor(what, major);
  if (!error) error = base::Error(base::Code::kUnauthenticated, "Kerberos failure");
  std::string detail = DisplayStatus(major, GSS_C_GSS_CODE);
  if (minor != 0)
    detail += " / " + DisplayStatus(minor, GSS_C_MECH_CODE) + " (" +
              std::to_string(static_cast<int32_t>(minor)) + ")";
  return base::Error(error->code(),
                     std::string(what.operation) + ": " + error->message() + " [" + detail + "]",
                     error->sys_errno());
}

}  // namespace auth::internal
