// What the VmService / PeerService fixtures share around their fake workers:
// a guest directory holding a stand-in program, and the clean-up of every
// worker a test started.
#pragma once

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "base/fd.h"
#include "common/process.h"

namespace appliance::fake {

// <dir>/guests with a "memory-guest.bin" that only has to exist (fake
// workers never run it); returns the directory.
inline std::string MakeGuestDir(const std::string& dir) {
  const std::string guests = dir + "/guests";
  ::mkdir(guests.c_str(), 0755);
  std::ofstream(guests + "/memory-guest.bin") << "fake program";
  return guests;
}

// Kills the workers of `pids` that are still our children, at once, and
// reaps them on Reap() (call it after the services that watch them are
// gone). The pidfd pins each process and waitid(WNOWAIT) says whether it is
// still our child, so a pid reaped and reused by someone else is never
// signalled.
class StrayWorkers {
 public:
  explicit StrayWorkers(const std::vector<int64_t>& pids) {
    for (int64_t pid : pids) {
      auto pidfd = PidfdOpen(pid);
      if (!pidfd) continue;
      siginfo_t info{};
      if (::waitid(P_PIDFD, id_t(pidfd->get()), &info, WEXITED | WNOHANG | WNOWAIT) != 0) continue;
      (void)PidfdSignal(pidfd->get(), SIGKILL);
      mine_.push_back(std::move(*pidfd));
    }
  }
  void Reap() {
    for (const base::Fd& pidfd : mine_) (void)PidfdReap(pidfd.get(), /*nohang=*/false);
    mine_.clear();
  }

 private:
  std::vector<base::Fd> mine_;
};

}  // namespace appliance::fake
