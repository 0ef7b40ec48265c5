// UserInGroup and IsAuthorized: group membership through the reentrant libc
// look-ups, so concurrent checks share no static buffers.
#include <grp.h>
#include <pwd.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "auth/local_accounts.h"

namespace auth {
namespace {

// A starting size when sysconf does not know one; grown on ERANGE.
constexpr size_t kDefaultBufferSize = 1024;
// Beyond this a look-up is refused rather than allocating without end.
constexpr size_t kMaxBufferSize = size_t{1} << 20;

size_t InitialBufferSize(int sysconf_name) {
  long size = ::sysconf(sysconf_name);
  return size > 0 ? static_cast<size_t>(size) : kDefaultBufferSize;
}

// Calls lookup(buffer) — a getpwnam_r/getgrnam_r with its struct bound —
// growing the buffer while it reports ERANGE. Returns whether an entry was
// found; what names the look-up in errors.
template <typename Lookup>
base::Result<bool> LookUp(const std::string& what, int sysconf_name, Lookup lookup) {
  std::vector<char> buffer(InitialBufferSize(sysconf_name));
  while (true) {
    int err = lookup(buffer);
    if (err == 0) return true;
    // getpwnam_r/getgrnam_r report "no such entry" as 0 with a null result,
    // but some NSS modules return one of these instead.
    if (err == ENOENT || err == ESRCH || err == EBADF || err == EPERM) return false;
    if (err != ERANGE || buffer.size() >= kMaxBufferSize) {
      return base::Error(base::Code::kInternal, "look up " + what + ": " + std::strerror(err), err);
    }
    buffer.resize(buffer.size() * 2);
  }
}

base::Status CheckName(const char* kind, const std::string& name) {
  if (name.empty())
    return base::Error(base::Code::kInvalidArgument, std::string(kind) + " name is empty");
  if (name.find('\0') != std::string::npos) {
    return base::Error(base::Code::kInvalidArgument,
                       std::string(kind) + " name contains a NUL byte");
  }
  return base::Ok();
}

base::Result<gid_t> GroupId(const std::string& group) {
  struct group entry {};
  struct group* found = nullptr;
  ASSIGN_OR_RETURN(bool ok,
                   LookUp("group " + group, _SC_GETGR_R_SIZE_MAX, [&](std::vector<char>& b) {
                     return ::getgrnam_r(group.c_str(), &entry, b.data(), b.size(), &found);
                   }));
  if (!ok || found == nullptr) {
    return base::Error(base::Code::kNotFound, "group " + group + " does not exist");
  }
  return entry.gr_gid;
}

base::Result<gid_t> PrimaryGroupId(const std::string& user) {
  struct passwd entry {};
  struct passwd* found = nullptr;
  ASSIGN_OR_RETURN(bool ok, LookUp("user " + user, _SC_GETPW_R_SIZE_MAX, [&](std::vector<char>& b) {
                     return ::getpwnam_r(user.c_str(), &entry, b.data(), b.size(), &found);
                   }));
  if (!ok || found == nullptr) {
    return base::Error(base::Code::kNotFound, "user " + user + " does not exist");
  }
  return entry.pw_gid;
}

// The kernel's limit on supplementary groups (NGROUPS_MAX), plus the primary.
constexpr int kMaxGroups = 65536 + 1;

// Every group of the user: the primary one and the supplementary ones.
std::vector<gid_t> GroupsOf(const std::string& user, gid_t primary) {
  int count = 32;
  std::vector<gid_t> groups;
  while (true) {
    groups.resize(count);
    int capacity = count;
    if (::getgrouplist(user.c_str(), primary, groups.data(), &count) >= 0) {
      groups.resize(count);
      return groups;
    }
    // count now holds the number needed (glibc); never let it shrink. Past
    // the kernel's limit the first kMaxGroups are all a process could have.
    if (capacity >= kMaxGroups) return groups;
    count = std::min(std::max(count, capacity * 2), kMaxGroups);
  }
}

}  // namespace

base::Result<bool> UserInGroup(const std::string& user, const std::string& group) {
  RETURN_IF_ERROR(CheckName("user", user));
  RETURN_IF_ERROR(CheckName("group", group));
  ASSIGN_OR_RETURN(gid_t wanted, GroupId(group));
  ASSIGN_OR_RETURN(gid_t primary, PrimaryGroupId(user));
  if (primary == wanted) return true;
  for (gid_t gid : GroupsOf(user, primary)) {
    if (gid == wanted) return true;
  }
  return false;
}

bool IsAuthorized(const std::string& user, const std::vector<std::string>& admins) {
  if (user.empty()) return false;
  for (const std::string& entry : admins) {
    if (entry.empty()) continue;
    if (entry[0] != '@') {
      if (entry == user) return true;
      continue;
    }
    if (entry.size() == 1) continue;
    base::Result<bool> member = UserInGroup(user, entry.substr(1));
    if (member.has_value() && *member) return true;
  }
  return false;
}

}  // namespace auth
