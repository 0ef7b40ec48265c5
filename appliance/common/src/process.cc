#include "common/process.h"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace appliance {

std::string ProcessExit::Describe() const {
  if (!known) return "exited (status unknown: it was not started by this ferryd)";
  if (signaled) return "exited on signal " + std::to_string(value);
  return "exited with status " + std::to_string(value);
}

base::Result<base::Fd> PidfdOpen(int64_t pid) {
  // Direct syscalls: glibc 2.36's <sys/pidfd.h> lacks extern "C" and
  // does not link from C++.
  int fd = int(::syscall(SYS_pidfd_open, pid_t(pid), 0u));
  if (fd < 0) return base::ErrnoError("pidfd_open(" + std::to_string(pid) + ")");
  // pidfd_open sets O_CLOEXEC itself (pidfds are always close-on-exec).
  return base::Fd(fd);
}

base::Status PidfdSignal(int pidfd, int sig) {
  if (::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0u) != 0) {
    if (errno == ESRCH) return base::Ok();  // already gone: the signal's goal is met
    return base::ErrnoError("pidfd_send_signal " + std::to_string(sig));
  }
  return base::Ok();
}

base::Result<ProcessExit> PidfdReap(int pidfd, bool nohang) {
  siginfo_t info{};
  int flags = WEXITED | (nohang ? WNOHANG : 0);
  for (;;) {
    if (::waitid(P_PIDFD, id_t(pidfd), &info, flags) == 0) break;
    if (errno == EINTR) continue;
    return base::ErrnoError("waitid(P_PIDFD)");
  }
  if (info.si_pid == 0) return base::Error(base::Code::kUnavailable, "process still running");
  ProcessExit exit;
  exit.known = true;
  exit.signaled = info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED;
  exit.value = info.si_status;
  return exit;
}

base::Result<bool> PidfdWaitExit(int pidfd, int timeout_ms) {
  pollfd p{pidfd, POLLIN, 0};
  for (;;) {
    int r = ::poll(&p, 1, timeout_ms);
    if (r < 0) {
      if (errno == EINTR) continue;
      return base::ErrnoError("poll pidfd");
    }
    return r > 0;
  }
}

}  // namespace appliance
