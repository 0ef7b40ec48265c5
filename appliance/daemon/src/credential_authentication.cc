// migration.authentication = "credssp" (docs/credentials.md): an admin's
// local-account password, from a log-on at the source, delegated inside TLS
// to the destination, which checks it against its own accounts.
//
//   ferry logon alice (at A)  --> LogonSessions of A keep alice's password
//   ferry --as alice move-vm  --> ApiCaller{alice, PasswordCredentials}
//   A: Prepare{authorization: {credentials, alice, password}} over TLS
//   B: CredentialMoveAuthorizer: PAM (service "ferry") + B's migration.admins
#include <unistd.h>

#include <climits>

#include "authentication_modes.h"
#include "base/base64.h"
#include "logon_sessions.h"
#include "password_credentials.h"

namespace appliance {
namespace {

constexpr const char* kCredSspMode = "migration.authentication = \"credssp\"";

std::string ThisHost() {
  char name[HOST_NAME_MAX + 1] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "this host";
  return name;
}

class CredentialMoveAuthorizer : public MoveAuthorizer {
 public:
  explicit CredentialMoveAuthorizer(std::vector<std::string> admins)
      : admins_(std::move(admins)), where_("at " + ThisHost()) {}

  base::Result<std::string> Authorize(const MoveAuthorization* authorization,
                                      const transport::TlsPeer& /*peer*/) const override {
    if (authorization == nullptr)
      return base::Error(base::Code::kPermissionDenied,
                         std::string("this host requires delegated credentials (") + kCredSspMode +
                             ") and the source sent none: start the move at a source in the same "
                             "mode, as an admin logged on there (ferry logon USER; ferry --as "
                             "USER move-vm ...)");
    if (authorization->mechanism != AuthorizationMechanism::kCredentials)
      return base::Error(base::Code::kPermissionDenied,
                         std::string("this host requires delegated credentials (") + kCredSspMode +
                             ") but the source sent a Kerberos token: both hosts need the same "
                             "migration.authentication");
    // The Secret owns a copy from here on; the frame's copy dies with the
    // request JSON.
    auth::Secret password{std::string_view(authorization->password)};
    RETURN_IF_ERROR(
        CheckLocalAdmin(authorization->user, password, admins_, where_, "move VMs to this host"));
    return authorization->user;
  }

 private:
  const std::vector<std::string> admins_;
  const std::string where_;
};

// "Basic base64(user:password)" → (user, password).
base::Result<std::pair<std::string, auth::Secret>> ParseBasic(const std::string& header) {
  constexpr std::string_view kScheme = "Basic ";
  if (header.size() <= kScheme.size() ||
      strncasecmp(header.c_str(), kScheme.data(), kScheme.size()) != 0)
    return base::Error(base::Code::kPermissionDenied,
                       std::string("the authorization header must be Basic (user name and "
                                   "password) on this host (") +
                           kCredSspMode + ")");
  ASSIGN_OR_RETURN(
      std::vector<uint8_t> decoded,
      base::Base64Decode(std::string_view(header).substr(kScheme.size()), "authorization header"));
  std::string text(decoded.begin(), decoded.end());
  std::fill(decoded.begin(), decoded.end(), uint8_t(0));
  const size_t colon = text.find(':');
  if (colon == std::string::npos || colon == 0) {
    auth::Secret wipe(std::move(text));
    return base::Error(base::Code::kPermissionDenied,
                       "the Basic authorization header holds no \"user:password\"");
  }
  std::string user = text.substr(0, colon);
  std::string password = text.substr(colon + 1);
  auth::Secret wipe(std::move(text));
  return std::pair{std::move(user), auth::Secret(std::move(password))};
}

class CredentialApiAuthenticator : public ApiAuthenticator {
 public:
  CredentialApiAuthenticator(std::vector<std::string> admins, std::shared_ptr<LogonSessions> logons)
      : admins_(std::move(admins)), logons_(std::move(logons)) {}

  base::Result<ApiCaller> Authenticate(const std::map<std::string, std::string>& headers,
                                       const ApiTransport& transport) const override {
    // Every request drops ended log-ons, so an expired password does not
    // wait in memory for the next log-on call.
    if (logons_ != nullptr) logons_->Purge();
    if (transport.remote) return Remote(headers);
    auto as = headers.find(kLogonUserHeader);
    if (as == headers.end()) return ApiCaller{};  // root, no credentials
    if (logons_ == nullptr)
      return base::Error(base::Code::kFailedPrecondition,
                         "this ferryd keeps no log-ons, so --as cannot name one");
    ASSIGN_OR_RETURN(auto credentials, logons_->Credentials(as->second));
    ApiCaller caller;
    caller.admin = as->second;
    caller.credentials = std::move(credentials);
    return caller;
  }

  std::string Challenge() const override { return "Basic realm=\"ferry\""; }

 private:
  // A remote request authenticated with a password counts as a log-on for
  // its own length: its moves delegate that password.
  base::Result<ApiCaller> Remote(const std::map<std::string, std::string>& headers) const {
    auto header = headers.find(kAuthorizationHeader);
    if (header == headers.end())
      return base::Error(base::Code::kPermissionDenied,
                         std::string("remote management needs a user name and password (") +
                             kCredSspMode + "): send Basic credentials of an admin");
    ASSIGN_OR_RETURN(auto basic, ParseBasic(header->second));
    RETURN_IF_ERROR(CheckLocalAdmin(basic.first, basic.second, admins_, "", "manage this host"));
    ApiCaller caller;
    caller.remote = true;
    caller.admin = basic.first;
    caller.credentials =
        std::make_shared<const PasswordCredentials>(basic.first, std::move(basic.second));
    return caller;
  }

  const std::vector<std::string> admins_;
  const std::shared_ptr<LogonSessions> logons_;
};

}  // namespace

base::Result<std::unique_ptr<MoveAuthorizer>> MakeCredentialMoveAuthorizer(
    const config::HostSettings& host) {
  return std::unique_ptr<MoveAuthorizer>(new CredentialMoveAuthorizer(host.admins));
}

base::Result<std::unique_ptr<ApiAuthenticator>> MakeCredentialApiAuthenticator(
    const config::HostSettings& host, std::shared_ptr<LogonSessions> logons) {
  return std::unique_ptr<ApiAuthenticator>(
      new CredentialApiAuthenticator(host.admins, std::move(logons)));
}

}  // namespace appliance
