#include "logon_sessions.h"

#include <chrono>

namespace appliance {
namespace {

int64_t SystemNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

LogonSessions::LogonSessions(Options options)
    : options_([&] {
        if (!options.now_unix_ms) options.now_unix_ms = &SystemNowMs;
        return std::move(options);
      }()) {}

base::Result<LogonInfo> LogonSessions::LogOn(const std::string& user, auth::Secret password) {
  // Outside the lock: a wrong password costs PAM's fail delay, which must
  // not hold up other log-ons or the moves looking up theirs.
  RETURN_IF_ERROR(CheckLocalAdmin(user, password, options_.admins, "",
                                  "log on to move VMs from this host", options_.pam));
  const int64_t now = options_.now_unix_ms();
  Session session;
  session.credentials = std::make_shared<const PasswordCredentials>(user, std::move(password));
  session.expires_unix_ms = now + options_.ttl_ms;
  base::MutexLock lock(mu_);
  PurgeLocked(now);
  sessions_[user] = std::move(session);  // a refresh drops (wipes) the old password
  return LogonInfo{user, now + options_.ttl_ms};
}

base::Status LogonSessions::LogOff(const std::string& user) {
  base::MutexLock lock(mu_);
  PurgeLocked(options_.now_unix_ms());
  if (sessions_.erase(user) == 0)
    return base::Error(base::Code::kNotFound, user + " is not logged on at this host");
  return base::Ok();
}

std::vector<LogonInfo> LogonSessions::List() {
  base::MutexLock lock(mu_);
  PurgeLocked(options_.now_unix_ms());
  std::vector<LogonInfo> out;
  for (const auto& [user, session] : sessions_) out.push_back({user, session.expires_unix_ms});
  return out;
}

base::Result<std::shared_ptr<const PasswordCredentials>> LogonSessions::Credentials(
    const std::string& user) {
  base::MutexLock lock(mu_);
  PurgeLocked(options_.now_unix_ms());
  auto it = sessions_.find(user);
  if (it == sessions_.end())
    return base::Error(
        base::Code::kPermissionDenied,
        "no log-on of " + user + " at this host: run ferry logon " + user + " here first");
  return it->second.credentials;
}

void LogonSessions::Purge() {
  base::MutexLock lock(mu_);
  PurgeLocked(options_.now_unix_ms());
}

void LogonSessions::PurgeLocked(int64_t now) {
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (it->second.expires_unix_ms <= now)
      it = sessions_.erase(it);
    else
      ++it;
  }
}

}  // namespace appliance
