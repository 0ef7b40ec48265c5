// Kerberos building blocks for authenticated moves (MIT krb5 GSSAPI, linked
// privately: no header of this module includes gssapi.h).
//
// The exchange is one token, initiator to acceptor, bound to the TLS channel
// it travels on: TLS already authenticates the server, so no mutual round
// trip is needed, and the channel binding (RFC 9266 tls-exporter bytes, given
// as the GSS channel bindings' application_data) makes a token useless on any
// other connection. The acceptor keeps a replay cache (MIT's default one, in
// $KRB5RCACHEDIR or /var/tmp), so a token is accepted once.
//
// Constrained delegation (S4U2Proxy), both flavours Active Directory offers:
//   Kerberos-only: the admin's token reaches host1; AcceptContext hands back
//     `delegated`, a credential for the admin that host1 may use toward the
//     services the directory allows (samba-tool delegation add-service).
//   Protocol transition: host1 authenticated the admin some other way and
//     calls Impersonate (S4U2Self); that needs `delegation for-any-protocol on`.
// In both, InitiateContext with the resulting credential performs S4U2Proxy.
// The initiator never forwards its TGT (no unconstrained delegation).
//
// Configuration: libkrb5 reads the file named by $KRB5_CONFIG (ferryd sets it
// from host.toml before creating any credential); it must say
// dns_lookup_kdc = false, rdns = false, dns_canonicalize_hostname = false and
// forwardable = true (constrained delegation needs forwardable tickets).
//
// Errors name the principals involved and what to do; codes:
//   kUnauthenticated    no/expired credentials, unknown client, clock skew,
//                       wrong key (keytab does not match the directory)
//   kPermissionDenied   channel binding mismatch, replayed token, delegation
//                       refused by the KDC
//   kNotFound           unknown service principal, keytab missing or without
//                       the principal
//   kUnavailable        the KDC cannot be reached
//   kInvalidArgument    malformed principal or token
// Thread safety: a KerberosCredential may be used from one thread at a time;
// distinct credentials and the free functions are safe in parallel.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"

struct gss_cred_id_struct;  // MIT's opaque credential (gss_cred_id_t)

namespace auth {

// Owns one GSS credential. Move-only.
class KerberosCredential {
 public:
  // The tickets in a credential cache, e.g. "FILE:/tmp/krb5cc_1000" (an
  // admin after kinit). Initiate only. Fails with "no Kerberos credentials:
  // run kinit" when the cache is empty or missing, and names the principal
  // when its tickets expired.
  static base::Result<KerberosCredential> FromCcache(const std::string& ccache_name);
  // A host's or service's own credential from its keytab (e.g. "host1$@REALM"
  // as exported by samba-tool domain exportkeytab). Usable to accept tokens
  // for every SPN of that account whose key the keytab holds, and to initiate
  // as `principal` (its TGT is fetched from the KDC when first needed, and
  // kept in memory only). Needed as acceptor for Kerberos-only delegation.
  static base::Result<KerberosCredential> FromKeytab(const std::string& keytab,
                                                     const std::string& principal);

  KerberosCredential(KerberosCredential&& other) noexcept;
  KerberosCredential& operator=(KerberosCredential&& other) noexcept;
  KerberosCredential(const KerberosCredential&) = delete;
  KerberosCredential& operator=(const KerberosCredential&) = delete;
  ~KerberosCredential();

  // S4U2Self (protocol transition): a credential for user_principal obtained
  // with this (keytab) credential, to be used with InitiateContext toward a
  // service this account may delegate to. The KDC issues it even without
  // for-any-protocol, but then non-forwardable, and S4U2Proxy is refused at
  // InitiateContext with a message naming the samba-tool command.
  base::Result<KerberosCredential> Impersonate(const std::string& user_principal) const;

  // Whose identity the credential carries, "alice@FERRY.TEST".
  const std::string& principal() const { return principal_; }
  // For a delegated or impersonated credential: the service account acting
  // for principal() ("host1$@FERRY.TEST"); "" for one's own credential.
  const std::string& impersonator() const { return impersonator_; }

  // For this module's implementation only.
  gss_cred_id_struct* handle() const { return cred_; }
  KerberosCredential(gss_cred_id_struct* cred, std::string principal, std::string impersonator,
                     std::string memory_ccache, bool protocol_transition);
  // The keytab file of a FromKeytab credential ("" otherwise).
  const std::string& keytab() const { return keytab_; }
  // Whether this credential came from Impersonate (S4U2Self).
  bool protocol_transition() const { return protocol_transition_; }

 private:
  void Release();

  gss_cred_id_struct* cred_ = nullptr;
  std::string principal_;
  std::string impersonator_;
  // The MEMORY: cache a keytab credential keeps its TGT in, destroyed with it.
  std::string memory_ccache_;
  bool protocol_transition_ = false;
  std::string keytab_;
};

// One token for target_principal ("ferry-migration/host2.ferry.test@FERRY.TEST"),
// bound to channel_binding. With a delegated or impersonated credential, MIT
// performs S4U2Proxy here, and a refusal names the delegating account, the
// target and the samba-tool command that allows it.
base::Result<std::vector<uint8_t>> InitiateContext(const KerberosCredential& cred,
                                                   const std::string& target_principal,
                                                   std::span<const uint8_t> channel_binding);

struct AcceptedContext {
  std::string client_principal;  // "alice@FERRY.TEST"
  // Present when the client's ticket was forwardable and the acceptor is a
  // keytab credential: usable with InitiateContext for S4U2Proxy (allowed by
  // the KDC only toward the services `delegation add-service` lists).
  std::optional<KerberosCredential> delegated;
};

// Verifies token (one InitiateContext output) with acceptor's keys, the
// channel binding (a token bound to another channel, or to none, is refused)
// and the replay cache.
base::Result<AcceptedContext> AcceptContext(const KerberosCredential& acceptor,
                                            std::span<const uint8_t> token,
                                            std::span<const uint8_t> channel_binding);

}  // namespace auth
