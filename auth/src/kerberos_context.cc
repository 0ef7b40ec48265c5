// The one-token GSS exchange: InitiateContext on the client (S4U2Proxy when
// the credential is delegated or impersonated) and AcceptContext on the
// server, both bound to the TLS channel.
#include <string>
#include <utility>

#include "auth/kerberos.h"
#include "kerberos_gss.h"

namespace auth {
namespace {

using internal::GssBuffer;
using internal::GssError;
using internal::GssName;
using internal::Situation;

// Owns a security context; the exchange is one token, so it is deleted as
// soon as the token is made or checked.
class GssContext {
 public:
  GssContext() = default;
  GssContext(const GssContext&) = delete;
  ~GssContext() {
    OM_uint32 minor = 0;
    if (ctx_ != GSS_C_NO_CONTEXT) gss_delete_sec_context(&minor, &ctx_, GSS_C_NO_BUFFER);
  }
  gss_ctx_id_t* out() { return &ctx_; }

 private:
  gss_ctx_id_t ctx_ = GSS_C_NO_CONTEXT;
};

gss_channel_bindings_struct Bindings(std::span<const uint8_t> binding) {
  gss_channel_bindings_struct cb{};
  cb.initiator_addrtype = GSS_C_AF_NULLADDR;
  cb.acceptor_addrtype = GSS_C_AF_NULLADDR;
  cb.application_data.length = binding.size();
  cb.application_data.value = const_cast<uint8_t*>(binding.data());
  return cb;
}

}  // namespace

base::Result<std::vector<uint8_t>> InitiateContext(const KerberosCredential& cred,
                                                   const std::string& target_principal,
                                                   std::span<const uint8_t> channel_binding) {
  Situation what{.operation = "Kerberos token for " + target_principal,
                 .client = cred.principal(),
                 .service = target_principal,
                 .impersonator = cred.impersonator(),
                 .protocol_transition = cred.protocol_transition()};
  if (channel_binding.empty())
    return base::Error(base::Code::kInvalidArgument, what.operation + ": no channel binding");
  ASSIGN_OR_RETURN(GssName target, internal::ImportPrincipal(target_principal));
  gss_channel_bindings_struct cb = Bindings(channel_binding);
  GssContext ctx;
  GssBuffer token;
  OM_uint32 minor = 0, ret_flags = 0;
  // No GSS_C_MUTUAL_FLAG (TLS authenticated the server: one token suffices)
  // and no GSS_C_DELEG_FLAG: the TGT never leaves this host; delegation is
  // only ever the KDC-controlled, constrained kind.
  OM_uint32 major = gss_init_sec_context(
      &minor, cred.handle(), ctx.out(), target.get(), const_cast<gss_OID>(gss_mech_krb5),
      GSS_C_REPLAY_FLAG | GSS_C_SEQUENCE_FLAG | GSS_C_INTEG_FLAG, GSS_C_INDEFINITE, &cb,
      GSS_C_NO_BUFFER, nullptr, token.out(), &ret_flags, nullptr);
  if (GSS_ERROR(major)) return GssError(what, major, minor);
  if (major != GSS_S_COMPLETE) {
    return base::Error(base::Code::kInternal,
                       what.operation + ": GSSAPI wants another round trip (mutual auth?)");
  }
  const auto* bytes = static_cast<const uint8_t*>(token.get().value);
  return std::vector<uint8_t>(bytes, bytes + token.get().length);
}

base::Result<AcceptedContext> AcceptContext(const KerberosCredential& acceptor,
                                            std::span<const uint8_t> token,
                                            std::span<const uint8_t> channel_binding) {
  Situation what{.operation = "accept Kerberos token",
                 .service = acceptor.principal(),
                 .keytab = acceptor.keytab()};
  if (channel_binding.empty())
    return base::Error(base::Code::kInvalidArgument, what.operation + ": no channel binding");
  if (token.empty())
    return base::Error(base::Code::kInvalidArgument, what.operation + ": empty token");
  gss_buffer_desc input{token.size(), const_cast<uint8_t*>(token.data())};
  gss_channel_bindings_struct cb = Bindings(channel_binding);
  GssContext ctx;
  GssName client;
  GssBuffer output;
  gss_cred_id_t delegated = GSS_C_NO_CREDENTIAL;
  OM_uint32 minor = 0, ret_flags = 0;
  OM_uint32 major =
      gss_accept_sec_context(&minor, ctx.out(), acceptor.handle(), &input, &cb, client.out(),
                             nullptr, output.out(), &ret_flags, nullptr, &delegated);
  AcceptedContext accepted;
  if (client.get() != GSS_C_NO_NAME)
    accepted.client_principal = internal::DisplayName(client.get());
  // Owned from here, also on the error paths below.
  if (delegated != GSS_C_NO_CREDENTIAL) {
    accepted.delegated.emplace(delegated, accepted.client_principal, acceptor.principal(), "",
                               false);
  }
  what.client = accepted.client_principal;
  if (GSS_ERROR(major)) return GssError(what, major, minor);
  if (major != GSS_S_COMPLETE) {
    return base::Error(base::Code::kInvalidArgument,
                       what.operation + ": the token asks for more than one round trip");
  }
  // MIT accepts a token carrying no binding at all even when the acceptor
  // gives one; a ferry client always binds, so an unbound token was made
  // outside a ferry TLS channel.
  if (!(ret_flags & GSS_C_CHANNEL_BOUND_FLAG)) {
    return base::Error(base::Code::kPermissionDenied,
                       what.operation + ": the token of " + accepted.client_principal +
                           " is not bound to this TLS channel (made by a client that does not "
                           "bind, or relayed)");
  }
  return accepted;
}

}  // namespace auth
