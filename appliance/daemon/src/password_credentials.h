// credssp mode's halves of a move's admin proof (admin_credentials.h,
// move_authorizer.h), both about a local account's user name and password:
//   source       PasswordCredentials: the password of a log-on at this host
//                (logon_sessions.h) or of a remote API request, delegated
//                inside the control connection's TLS session;
//   destination  CheckLocalAdmin: the password against this host's accounts
//                (PAM service "ferry") and the user against migration.admins.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "auth/local_accounts.h"
#include "auth/secret.h"
#include "base/result.h"
#include "daemon/admin_credentials.h"

namespace appliance {

// Immutable once made, so a move may hold it (shared) while its log-on ends:
// the password then lives until the last move using it finishes.
class PasswordCredentials : public AdminCredentials {
 public:
  PasswordCredentials(std::string user, auth::Secret password)
      : user_(std::move(user)), password_(std::move(password)) {}
  const std::string& admin() const override { return user_; }
  // {kCredentials, user, password}: the TLS session to `peer` is what keeps
  // the password from anyone but the destination that presented a trusted
  // certificate (CallPeer calls this only once that session stands).
  base::Result<MoveAuthorization> Authorize(const transport::TlsPeer& peer) const override;

 private:
  std::string user_;
  auth::Secret password_;
};

// Whether `user` with `password` may act as an admin here: PAM first, then
// the admin list. `where` ends the password messages ("at host2"; "" for
// none); `may` says what an admin may do here ("move VMs to this host").
// kPermissionDenied:
//   "authentication failed for user X<where>"       wrong password, no such
//                                                    user, locked password;
//   "account X is locked or expired"                PAM's account check;
//   "X may not <may> (migration.admins: a, @g)";
// kFailedPrecondition when /etc/pam.d/ferry is missing or broken. Blocks
// (PAM's fail delay, ~2 s, after a wrong password).
base::Status CheckLocalAdmin(const std::string& user, const auth::Secret& password,
                             const std::vector<std::string>& admins, const std::string& where,
                             std::string_view may, const auth::PamOptions& pam = {});

}  // namespace appliance
