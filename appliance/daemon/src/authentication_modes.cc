// migration.authentication: which check a Prepare and an API request get
// (move_authorizer.h, api_caller.h). Certificate mode lives here: the
// peer's trusted certificate is all a destination asks, and the local
// socket's root is the only API caller.
#include "authentication_modes.h"

namespace appliance {
namespace {

class CertificateMoveAuthorizer : public MoveAuthorizer {
 public:
  base::Result<std::string> Authorize(const MoveAuthorization* /*authorization*/,
                                      const transport::TlsPeer& peer) const override {
    // The TLS handshake already checked the certificate against [tls]; an
    // admin proof a source sends anyway is not needed here.
    return "host " + (peer.subject.empty() ? peer.fingerprint : peer.subject);
  }
};

class LocalRootAuthenticator : public ApiAuthenticator {
 public:
  base::Result<ApiCaller> Authenticate(const std::map<std::string, std::string>& /*headers*/,
                                       const ApiTransport& transport) const override {
    if (transport.remote)
      return base::Error(base::Code::kPermissionDenied,
                         "remote management needs migration.authentication = \"kerberos\" or "
                         "\"credssp\"");
    return ApiCaller{};
  }
  std::string Challenge() const override { return ""; }
};

}  // namespace

base::Result<std::unique_ptr<MoveAuthorizer>> MakeMoveAuthorizer(const config::HostSettings& host) {
  switch (host.authentication) {
    case config::AuthenticationType::kKerberos: return MakeKerberosMoveAuthorizer(host);
    case config::AuthenticationType::kCredSsp: return MakeCredentialMoveAuthorizer(host);
    case config::AuthenticationType::kCertificate: break;
  }
  return std::unique_ptr<MoveAuthorizer>(new CertificateMoveAuthorizer());
}

base::Result<std::unique_ptr<ApiAuthenticator>> MakeApiAuthenticator(
    const config::HostSettings& host, std::shared_ptr<LogonSessions> logons) {
  switch (host.authentication) {
    case config::AuthenticationType::kKerberos: return MakeKerberosApiAuthenticator(host);
    case config::AuthenticationType::kCredSsp:
      return MakeCredentialApiAuthenticator(host, std::move(logons));
    case config::AuthenticationType::kCertificate: break;
  }
  return std::unique_ptr<ApiAuthenticator>(new LocalRootAuthenticator());
}

}  // namespace appliance
