// Log-ons at this host (migration.authentication = "credssp"): the admins
// who gave ferryd their password here, so that a move started here can
// delegate it to the destination. Hyper-V's CredSSP works the same way: the
// credentials reach the source only through a log-on at the source, which is
// why moving a VM back needs a log-on at the host it moved to.
//
// Memory only: the passwords are never written anywhere. A log-on ends by
// LogOff, by its expiry (ttl after the last log-on of that user; a new
// log-on refreshes it), or with ferryd. Ended log-ons are dropped (their
// Secret wiped) at the next call of any method; a move already started
// keeps its own reference until it ends (password_credentials.h).
//
// Thread-safety: all methods may be called from any thread; LogOn blocks in
// PAM without holding the lock.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "auth/local_accounts.h"
#include "auth/secret.h"
#include "base/mutex.h"
#include "base/result.h"
#include "password_credentials.h"

namespace appliance {

struct LogonInfo {
  std::string user;
  int64_t expires_unix_ms = 0;
};

class LogonSessions {
 public:
  struct Options {
    // migration.admins: who may log on.
    std::vector<std::string> admins;
    // How long a log-on lasts after it was made.
    int64_t ttl_ms = 8 * 3600 * 1000;
    auth::PamOptions pam;
    // Wall-clock milliseconds since the epoch; tests pass a fake.
    std::function<int64_t()> now_unix_ms;
  };
  explicit LogonSessions(Options options);

  // Checks the password (PAM) and the admin list (CheckLocalAdmin's errors),
  // then keeps the password, replacing an earlier log-on of the same user.
  base::Result<LogonInfo> LogOn(const std::string& user, auth::Secret password);
  // kNotFound "USER is not logged on at this host" when there is none.
  base::Status LogOff(const std::string& user);
  // The live log-ons, by user name; never the passwords.
  std::vector<LogonInfo> List();
  // The credentials of USER's live log-on, or kPermissionDenied
  // "no log-on of USER at this host: run ferry logon USER here first".
  base::Result<std::shared_ptr<const PasswordCredentials>> Credentials(const std::string& user);
  // Drops ended log-ons now (every other method does it too).
  void Purge();

 private:
  struct Session {
    std::shared_ptr<const PasswordCredentials> credentials;
    int64_t expires_unix_ms = 0;
  };
  void PurgeLocked(int64_t now) REQUIRES(mu_);

  const Options options_;
  base::Mutex mu_;
  std::map<std::string, Session> sessions_ GUARDED_BY(mu_);
};

}  // namespace appliance
