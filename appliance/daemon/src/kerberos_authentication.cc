// migration.authentication = "kerberos" (docs/kerberos.md): the API takes an
// admin's token ("Authorization: Negotiate <base64>", made by `ferry` from
// the admin's ticket) and keeps a credential to act for them toward the
// destination; the destination takes the token the source's account made
// for the admin (constrained delegation) from the Prepare.
#include <strings.h>

#include "authentication_modes.h"
#include "base/base64.h"
#include "kerberos_acceptor.h"
#include "kerberos_admin_credentials.h"

namespace appliance {
namespace {

constexpr std::string_view kNegotiate = "Negotiate";

// The token of an "authorization: Negotiate <base64>" header.
base::Result<std::vector<uint8_t>> NegotiateToken(const std::string& header) {
  size_t space = header.find(' ');
  std::string scheme = header.substr(0, space);
  if (space == std::string::npos || scheme.size() != kNegotiate.size() ||
      ::strncasecmp(scheme.c_str(), kNegotiate.data(), kNegotiate.size()) != 0)
    return base::Error(base::Code::kPermissionDenied,
                       "authorization: this ferryd takes Kerberos (Negotiate <token>), not \"" +
                           scheme + "\" (migration.authentication = \"kerberos\")");
  std::string_view text = std::string_view(header).substr(space + 1);
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  auto token = base::Base64Decode(text, "authorization: Negotiate token");
  if (!token) return base::Error(base::Code::kPermissionDenied, token.error().message());
  return token;
}

class KerberosApiAuthenticator : public ApiAuthenticator {
 public:
  explicit KerberosApiAuthenticator(std::shared_ptr<const KerberosAcceptor> acceptor)
      : acceptor_(std::move(acceptor)) {}

  base::Result<ApiCaller> Authenticate(const std::map<std::string, std::string>& headers,
                                       const ApiTransport& transport) const override {
    auto header = headers.find(kAuthorizationHeader);
    if (header == headers.end()) {
      // Root on the local socket may do all but moves, which LiveMoveService
      // refuses without credentials, saying to run kinit.
      if (!transport.remote) return ApiCaller{};
      return base::Error(base::Code::kPermissionDenied,
                         "this ferryd's API needs Kerberos (Negotiate) authentication: run kinit "
                         "as an admin named in migration.admins and try again");
    }
    ASSIGN_OR_RETURN(std::vector<uint8_t> token, NegotiateToken(header->second));
    auto accepted = acceptor_->Accept(token, transport.channel_binding);
    if (!accepted)
      return base::Error(base::Code::kPermissionDenied,
                         "Kerberos token for " + acceptor_->service_principal() +
                             " refused: " + accepted.error().message());
    const std::string principal = accepted->client_principal;
    RETURN_IF_ERROR(acceptor_->CheckAdmin(principal, "manage this host"));
    ApiCaller caller;
    caller.remote = transport.remote;
    caller.admin = principal;
    if (accepted->delegated) {
      caller.credentials = std::make_shared<KerberosAdminCredentials>(
          *std::move(accepted->delegated), acceptor_->realm(), acceptor_);
    } else {
      // No forwardable ticket came: protocol transition (S4U2Self), which
      // the directory must allow (delegation for-any-protocol on) for the
      // S4U2Proxy step toward the destination to succeed.
      auto impersonated = acceptor_->Impersonate(principal);
      if (!impersonated)
        return base::Error(base::Code::kPermissionDenied,
                           "acting for " + principal + ": " + impersonated.error().message());
      caller.credentials =
          std::make_shared<KerberosAdminCredentials>(*std::move(impersonated), acceptor_->realm());
    }
    return caller;
  }

  std::string Challenge() const override { return std::string(kNegotiate); }

 private:
  std::shared_ptr<const KerberosAcceptor> acceptor_;
};

class KerberosMoveAuthorizer : public MoveAuthorizer {
 public:
  explicit KerberosMoveAuthorizer(std::shared_ptr<const KerberosAcceptor> acceptor)
      : acceptor_(std::move(acceptor)) {}

  base::Result<std::string> Authorize(const MoveAuthorization* authorization,
                                      const transport::TlsPeer& source) const override {
    if (authorization == nullptr || authorization->mechanism != AuthorizationMechanism::kKerberos) {
      const char* sent = authorization == nullptr ? "nothing" : "a user name and password";
      return base::Error(base::Code::kPermissionDenied,
                         std::string("this host requires Kerberos (migration.authentication = "
                                     "\"kerberos\"); the source sent ") +
                             sent +
                             ": set migration.authentication = \"kerberos\" at the source too");
    }
    auto accepted = acceptor_->Accept(authorization->kerberos_token, source.channel_binding);
    if (!accepted)
      return base::Error(base::Code::kPermissionDenied,
                         "the Kerberos proof from " + SourceName(source) + " for " +
                             acceptor_->service_principal() +
                             " was refused: " + accepted.error().message());
    RETURN_IF_ERROR(acceptor_->CheckAdmin(accepted->client_principal, "move VMs to this host"));
    return accepted->client_principal;
  }

 private:
  static std::string SourceName(const transport::TlsPeer& source) {
    return "host " + (source.subject.empty() ? source.fingerprint : source.subject);
  }

  std::shared_ptr<const KerberosAcceptor> acceptor_;
};

}  // namespace

base::Result<std::unique_ptr<MoveAuthorizer>> MakeKerberosMoveAuthorizer(
    const config::HostSettings& host) {
  ASSIGN_OR_RETURN(std::shared_ptr<KerberosAcceptor> acceptor, KerberosAcceptor::Open(host));
  return std::unique_ptr<MoveAuthorizer>(new KerberosMoveAuthorizer(std::move(acceptor)));
}

base::Result<std::unique_ptr<ApiAuthenticator>> MakeKerberosApiAuthenticator(
    const config::HostSettings& host) {
  ASSIGN_OR_RETURN(std::shared_ptr<KerberosAcceptor> acceptor, KerberosAcceptor::Open(host));
  return std::unique_ptr<ApiAuthenticator>(new KerberosApiAuthenticator(std::move(acceptor)));
}

}  // namespace appliance
