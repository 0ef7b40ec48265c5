#include "support/local_accounts.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <random>
#include <sstream>

#include "support/files.h"

extern char** environ;

namespace ferry_test {
namespace {

constexpr std::string_view kPrefix = "ferrytest-";

// The pid encoded in a ferrytest-<pid>-... name; 0 if it has none.
pid_t PidOfName(const std::string& name) {
  if (name.rfind(kPrefix, 0) != 0) return 0;
  pid_t pid = 0;
  for (size_t i = kPrefix.size(); i < name.size() && name[i] != '-'; ++i) {
    if (name[i] < '0' || name[i] > '9' || pid > 10'000'000) return 0;
    pid = pid * 10 + (name[i] - '0');
  }
  return pid;
}

// Names of the entries in an /etc/passwd- or /etc/group-style file whose
// process is gone.
std::vector<std::string> StaleNames(const std::string& file) {
  std::vector<std::string> stale;
  std::istringstream lines(ReadFile(file));
  for (std::string line; std::getline(lines, line);) {
    std::string name = line.substr(0, line.find(':'));
    pid_t pid = PidOfName(name);
    if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) stale.push_back(name);
  }
  return stale;
}

// Users before groups: groupdel refuses a group that is someone's primary.
void RemoveStaleAccounts() {
  for (const std::string& user : StaleNames("/etc/passwd")) {
    if (std::string why = RunTool({"/usr/sbin/userdel", user}); !why.empty()) {
      ADD_FAILURE() << "remove stale test user " << user << ": " << why;
    }
  }
  for (const std::string& group : StaleNames("/etc/group")) {
    if (std::string why = RunTool({"/usr/sbin/groupdel", group}); !why.empty()) {
      ADD_FAILURE() << "remove stale test group " << group << ": " << why;
    }
  }
}

std::string NewName() {
  std::random_device random;
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "%06x", random() & 0xffffff);
  return std::string(kPrefix) + std::to_string(::getpid()) + "-" + suffix;
}

void CloseBoth(int fds[2]) {
  ::close(fds[0]);
  ::close(fds[1]);
}

}  // namespace

std::string LocalAccountsUnusableReason() {
  if (::geteuid() != 0) return "creating local test accounts (useradd, groupadd) needs root";
  return "";
}

std::string RunTool(const std::vector<std::string>& argv, std::string_view input) {
  int in[2];
  int out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return std::string("pipe: ") + std::strerror(errno);
  if (::pipe2(out, O_CLOEXEC) != 0) {
    CloseBoth(in);
    return std::string("pipe: ") + std::strerror(errno);
  }
  // The input (a line or two) fits the pipe's buffer: written before the
  // tool starts, so a tool that exits without reading cannot raise SIGPIPE.
  bool wrote = ::write(in[1], input.data(), input.size()) == static_cast<ssize_t>(input.size());
  ::close(in[1]);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, out[1], 2);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int spawn_error = ::posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(in[0]);
  ::close(out[1]);
  std::string output;
  char buffer[4096];
  for (ssize_t n; (n = ::read(out[0], buffer, sizeof buffer)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    output.append(buffer, n);
  }
  ::close(out[0]);
  if (spawn_error != 0) return "start " + argv[0] + ": " + std::strerror(spawn_error);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!wrote) return argv[0] + ": could not write its input";
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  return argv[0] + " " + (argv.size() > 1 ? argv[1] : "") + " failed (status " +
         std::to_string(status) + "): " + output;
}

TestAccount::TestAccount(std::string_view password, Group group) {
  static std::once_flag cleaned;
  std::call_once(cleaned, RemoveStaleAccounts);
  user_ = NewName();
  std::vector<std::string> useradd = {"/usr/sbin/useradd", "-M", "-s", "/usr/sbin/nologin"};
  if (group != Group::kNone) {
    group_ = user_ + "g";
    if (std::string why = RunTool({"/usr/sbin/groupadd", group_}); !why.empty()) {
      ADD_FAILURE() << "create test group: " << why;
      return;
    }
    group_created_ = true;
  }
  if (group == Group::kPrimary) {
    useradd.insert(useradd.end(), {"-g", group_});
  } else {
    useradd.push_back("-N");  // the system's default group, not a new one
  }
  useradd.push_back(user_);
  if (std::string why = RunTool(useradd); !why.empty()) {
    ADD_FAILURE() << "create test user: " << why;
    return;
  }
  user_created_ = true;
  std::string line = user_ + ":" + std::string(password) + "\n";
  if (std::string why = RunTool({"/usr/sbin/chpasswd"}, line); !why.empty()) {
    ADD_FAILURE() << "set the password of " << user_ << ": " << why;
    return;
  }
  if (group == Group::kSupplementary) {
    if (std::string why = RunTool({"/usr/bin/gpasswd", "-a", user_, group_}); !why.empty()) {
      ADD_FAILURE() << "add " << user_ << " to " << group_ << ": " << why;
      return;
    }
  }
  ok_ = true;
}

TestAccount::~TestAccount() {
  if (user_created_) {
    if (std::string why = RunTool({"/usr/sbin/userdel", user_}); !why.empty()) {
      ADD_FAILURE() << "remove test user: " << why;
    }
  }
  if (group_created_) {
    if (std::string why = RunTool({"/usr/sbin/groupdel", group_}); !why.empty()) {
      ADD_FAILURE() << "remove test group: " << why;
    }
  }
}

void TestAccount::Lock() {
  if (std::string why = RunTool({"/usr/sbin/usermod", "-L", user_}); !why.empty()) {
    ADD_FAILURE() << "lock " << user_ << ": " << why;
  }
}

void TestAccount::Expire() {
  if (std::string why = RunTool({"/usr/bin/chage", "-E", "0", user_}); !why.empty()) {
    ADD_FAILURE() << "expire " << user_ << ": " << why;
  }
}

}  // namespace ferry_test
