// Local accounts for the credential-delegation mode (issue 10, the CredSSP
// equivalent): an admin logs on at the source with a user name and password,
// the source delegates them over TLS, and the destination checks them here —
// the password against its own accounts through PAM, then the user against
// the admin list of its host.toml.
//
//   destination ferryd                      this module
//   ------------------                      -----------
//   receives (user, Secret) over TLS
//   VerifyPassword(user, secret, {})  --->  pam_authenticate + pam_acct_mgmt
//                                           with service "ferry"
//                                           (/etc/pam.d/ferry, installed from
//                                           scripts/pam.d/ferry)
//   IsAuthorized(user, admins)        --->  user names, "@group" entries
//                                           (getpwnam_r/getgrnam_r/getgrouplist)
//
// Both calls are thread-safe: each VerifyPassword has its own PAM handle, and
// the account look-ups use the reentrant libc calls. Both block (PAM may
// sleep after a failure — pam_unix's fail delay, about 2 s — and NSS may ask
// a directory): call them from a thread that may wait, not an event loop.
// docs/credentials.md says what each error means to an admin.
#pragma once

#include <string>
#include <vector>

#include "auth/secret.h"
#include "base/result.h"

namespace auth {

struct PamOptions {
  // The PAM service, i.e. the file name under config_dir. No '/' allowed.
  std::string service = "ferry";
  // Where the service file lives; "" means the system's /etc/pam.d. Tests
  // point it at a temporary directory (pam_start_confdir, Linux-PAM >= 1.4).
  // Only the service file is read from there: Linux-PAM 1.5 still resolves a
  // relative "@include common-auth" in /etc/pam.d (an absolute path is taken
  // as is), so the host's own password rules apply either way.
  std::string config_dir;
};

// Checks `password` for the local account `user` with the PAM service of
// `options`: authentication (the password) and account management (locked,
// expired). The conversation answers password prompts with the secret,
// passes informational messages by, and refuses anything else (a prompt
// for an echoed answer such as a user name or a one-time code). Empty
// passwords are refused even where the service allows them (nullok).
//
// Errors:
//   kPermissionDenied  "authentication failed for user X" — wrong password,
//                      unknown user, or a locked password (the three are
//                      deliberately told apart nowhere: the peer must not
//                      learn which accounts exist);
//   kPermissionDenied  "account X is locked or expired" — the password was
//                      right but account management refused (expired
//                      account, expired password, access rules);
//   kFailedPrecondition naming the service file — it is missing, cannot be
//                      parsed, names a module that does not load, or asks
//                      for more than a password;
//   kInvalidArgument   an empty user name, a service name with '/', or a NUL
//                      byte in the user name or password.
base::Status VerifyPassword(const std::string& user, const Secret& password,
                            const PamOptions& options);

// Whether `user` is a member of `group`, as its primary group or as a
// supplementary one (getgrouplist: /etc/group and any NSS source).
// Errors: kNotFound naming the group (or the user) when it does not exist;
// kInvalidArgument for an empty name; kInternal when the look-up itself fails.
base::Result<bool> UserInGroup(const std::string& user, const std::string& group);

// The admin list as host.toml spells it: each entry is a user name, or
// "@group" for every member of a local group. True when `user` matches an
// entry. A group that cannot be checked (it does not exist, the look-up
// fails) grants nothing, and the entries after it are still checked; empty
// entries and a bare "@" match no one.
bool IsAuthorized(const std::string& user, const std::vector<std::string>& admins);

}  // namespace auth
