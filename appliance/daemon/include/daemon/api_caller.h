// Who sent an API request, as the server layer establishes it before the
// request reaches ApiHandler: the local socket (root-only, so root) or a
// remote management connection (api_listen, HTTPS), where the caller must
// prove who it is. A request may carry an admin's credentials (a Kerberos
// token, or name a log-on at this host); they become AdminCredentials for a
// move (admin_credentials.h).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "config/host_settings.h"
#include "daemon/admin_credentials.h"

namespace appliance {

struct ApiCaller {
  bool remote = false;
  // "root" on the local socket when no admin identity came with the request;
  // otherwise the authenticated admin ("alice@FERRY.TEST", "alice").
  std::string admin = "root";
  // For moves; null when the request brought none (certificate mode needs
  // none; the other modes refuse a move without them, saying what to do).
  std::shared_ptr<const AdminCredentials> credentials;
};

// The header names the API reads, lower-case.
inline constexpr const char* kAuthorizationHeader = "authorization";
// Local requests in credssp mode: the user whose log-on at this host a move
// delegates (`ferry --as USER`).
inline constexpr const char* kLogonUserHeader = "x-ferry-user";

// How a request reached ferryd.
struct ApiTransport {
  // Over api_listen (HTTPS), where an admin identity is required and must be
  // in migration.admins; else the local socket (root-only).
  bool remote = false;
  // What a Kerberos token of this request must be bound to: on the local
  // socket the bytes of common/api_binding.h's kLocalApiChannelBinding; over
  // HTTPS the SHA-256 of ferryd's certificate (RFC 5929 tls-server-end-point),
  // so a token made for another server is refused.
  std::vector<uint8_t> channel_binding;
};

class ApiAuthenticator {
 public:
  virtual ~ApiAuthenticator() = default;
  // headers: lower-case names. Refusals are kPermissionDenied with a
  // message saying what to do (run kinit, log on, use Kerberos); a remote
  // request that brought no credentials at all gets kUnauthenticated-style
  // kPermissionDenied too, answered 401 with Challenge().
  virtual base::Result<ApiCaller> Authenticate(const std::map<std::string, std::string>& headers,
                                               const ApiTransport& transport) const = 0;
  // The WWW-Authenticate value of a 401 ("Negotiate", "Basic realm=\"ferry\"");
  // "" where remote callers are never accepted.
  virtual std::string Challenge() const = 0;
};

class LogonSessions;  // credssp mode's log-ons at this host (daemon/src/logon_sessions.h)

// The authenticator of host.toml's migration.authentication. credssp mode
// finds the log-ons `ferry --as` names in `logons` (made by ferryd_main in
// that mode only; the other modes ignore it).
base::Result<std::unique_ptr<ApiAuthenticator>> MakeApiAuthenticator(
    const config::HostSettings& host, std::shared_ptr<LogonSessions> logons = nullptr);

}  // namespace appliance
