// Process handles through pidfds: a pidfd names one process for its whole
// life, so signalling or polling it can never hit a recycled pid.
#pragma once

#include <cstdint>
#include <string>

#include "base/fd.h"
#include "base/result.h"

namespace appliance {

// How a process ended. For a process that is not our child (a worker that a
// previous ferryd started) the kernel does not tell us, so known is false.
struct ProcessExit {
  bool known = false;
  bool signaled = false;
  int value = 0;  // exit status, or signal number when signaled
  // "exited with status 2", "exited on signal 9", "exited (status unknown: not a child of this
  // ferryd)"
  std::string Describe() const;
};

base::Result<base::Fd> PidfdOpen(int64_t pid);
base::Status PidfdSignal(int pidfd, int sig);
// Reaps our child named by pidfd; blocks until it exits unless nohang, in
// which case kUnavailable means it is still running.
base::Result<ProcessExit> PidfdReap(int pidfd, bool nohang);
// Waits at most timeout_ms for the process to exit; true if it did.
base::Result<bool> PidfdWaitExit(int pidfd, int timeout_ms);

}  // namespace appliance
