// VmControl: what ferryd does to a VM's worker — launch it (start, restore),
// stop it, pause or resume it, save it, and read its run state back. The
// control actions of VmService::Act, and the steps other pieces of VmService
// borrow (a checkpoint apply stops the VM, a resolve resumes it).
//
// Threads: every method runs with the VM's op_mu held by the caller (one
// action per VM at a time) and takes vm.mu itself, briefly, never across a
// worker call (vm_registry.h has the lock order).
#pragma once

#include <string>

#include "base/result.h"
#include "daemon/vm_registry.h"
#include "daemon/vm_state.h"

namespace appliance {

class VmControl {
 public:
  // core must outlive this.
  explicit VmControl(VmRegistry& core) : core_(core) {}

  // kStart, kRestore (state_file: where to read; "" = the VM's saved state).
  base::Status Launch(VmEntry& vm, VmAction action, const std::string& state_file);
  base::Status Stop(VmEntry& vm);
  base::Status PauseOrResume(VmEntry& vm, VmAction action);
  // state_file: where to write ("" = <vm dir>/saved.fvs).
  base::Status Save(VmEntry& vm, const std::string& state_file);
  // Re-reads the worker's run state into the runtime record (a move may have
  // paused the VM, or undone its pause).
  void RefreshStateFromWorker(VmEntry& vm);
  // What happened to a worker that is gone or going: its pid's exit record,
  // or a pidfd that reports the exit (an unreaped zombie still answers
  // pidfd_open but never its control socket). No lock needed.
  bool WorkerHasExited(const std::string& name, int64_t pid, int pidfd);

 private:
  // Waits (vm.mu held) until the worker exits; kills it if it does not
  // within the timeout.
  base::Status AwaitWorkerExit(VmEntry& vm, int64_t pid) REQUIRES(vm.mu);
  // True once the worker `pid` exited (or the VM has another worker), false
  // if the timeout passed first. vm.mu held.
  bool ExitedWithin(VmEntry& vm, int64_t pid, int timeout_ms) REQUIRES(vm.mu);

  VmRegistry& core_;
};

}  // namespace appliance
