// VmControl: start, restore, stop, pause, resume and save of a VM's worker
// (vm_control.h). Worker calls happen without vm.mu held.
#include "daemon/vm_control.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>

#include "base/log.h"
#include "common/process.h"
#include "daemon/worker_exit.h"
#include "daemon/worker_launcher.h"
#include "ipc/worker_protocol.h"

namespace appliance {

namespace {

constexpr int kExitRecordWaitMs = 5000;  // a worker that wrote its exit record

}  // namespace

base::Status VmControl::Launch(VmEntry& vm, VmAction action, const std::string& state_file) {
  LaunchSpec spec;
  spec.worker_binary = core_.options().worker_binary;
  spec.vm_dir = core_.inventory().VmDir(vm.name);
  spec.control_socket = core_.inventory().ControlSocketPath(vm.name);
  spec.log_path = core_.inventory().WorkerLogPath(vm.name);
  spec.exit_record_path = core_.inventory().WorkerExitPath(vm.name);
  spec.error_path = core_.inventory().WorkerErrorPath(vm.name);
  const bool restore = action == VmAction::kRestore;
  if (restore) {
    base::MutexLock lock(vm.mu);
    spec.restore_path = !state_file.empty() ? state_file
                        : !vm.runtime.saved_state.empty()
                            ? vm.runtime.saved_state
                            : core_.inventory().SavedStatePath(vm.name);
    struct stat st {};
    if (::stat(spec.restore_path.c_str(), &st) != 0)
      return base::Error(base::Code::kNotFound, "cannot restore vm " + vm.name +
                                                    ": no saved state at " + spec.restore_path);
  }
  base::LogInfo("vm " + vm.name + ": " +
                (restore ? "restoring from " + spec.restore_path : "starting"));
  auto launched = LaunchWorker(spec, core_.options().worker_ready_timeout_ms);
  if (!launched) {
    base::Error error = launched.error();
    if (restore && error.code() == base::Code::kDataLoss) {
      // The worker verified the file before building anything: say so, and
      // name the file if its message does not.
      std::string detail = error.message();
      if (detail.find(spec.restore_path) == std::string::npos)
        detail = spec.restore_path + ": " + detail;
      error = base::Error(
          base::Code::kDataLoss,
          "cannot restore vm " + vm.name + ": corrupt state file, nothing was restored: " + detail);
    } else {
      error = error.Wrap("cannot " + std::string(ToString(action)) + " vm " + vm.name);
    }
    base::MutexLock lock(vm.mu);
    RuntimeRecord after = vm.runtime;
    after.last_error = error.message();
    if (auto st = core_.Persist(vm, after); !st) base::LogError(st.error().ToString());
    return error;
  }
  {
    base::MutexLock lock(vm.mu);
    RuntimeRecord after;
    after.state = VmState::kRunning;
    after.worker_pid = launched->pid;
    after.control_socket = spec.control_socket;
    after.changed_unix_ms = UnixMillisNow();
    vm.exit_expected = false;
    vm.exited = false;
    // The record must name the pid before the supervisor can report its exit.
    auto persisted = core_.Persist(vm, after);
    if (!persisted) base::LogError(persisted.error().ToString());
  }
  RETURN_IF_ERROR(core_.supervisor().Watch(vm.name, launched->pid, std::move(launched->pidfd),
                                           /*is_child=*/true));
  // The state file in the VM's directory is stale once the VM runs again (its
  // disks move on), so it goes; a file the admin named is theirs to keep.
  if (restore && spec.restore_path == core_.inventory().SavedStatePath(vm.name))
    ::unlink(spec.restore_path.c_str());
  base::LogInfo("vm " + vm.name + ": running, worker pid " + std::to_string(launched->pid));
  return base::Ok();
}

bool VmControl::ExitedWithin(VmEntry& vm, int64_t pid, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!vm.exited && vm.runtime.worker_pid == pid) {
    if (!vm.exited_cv.WaitUntil(vm.mu, deadline)) return vm.exited || vm.runtime.worker_pid != pid;
  }
  return true;
}

base::Status VmControl::AwaitWorkerExit(VmEntry& vm, int64_t pid) {
  if (ExitedWithin(vm, pid, core_.options().exit_timeout_ms)) return base::Ok();
  base::LogWarning("vm " + vm.name + ": worker pid " + std::to_string(pid) +
                   " did not exit within " + std::to_string(core_.options().exit_timeout_ms) +
                   " ms; killing it");
  // A worker that exits meanwhile can no longer be signalled: the wait below tells.
  (void)core_.supervisor().Signal(pid, SIGKILL);
  if (ExitedWithin(vm, pid, core_.options().exit_timeout_ms)) return base::Ok();
  return base::Error(base::Code::kInternal, "worker pid " + std::to_string(pid) + " of vm " +
                                                vm.name + " did not exit even after SIGKILL");
}

base::Status VmControl::Stop(VmEntry& vm) {
  base::MutexLock lock(vm.mu);
  RuntimeRecord after = vm.runtime;
  after.worker_pid = 0;
  after.control_socket.clear();
  after.last_error.clear();
  after.changed_unix_ms = UnixMillisNow();
  after.state = VmState::kStopped;
  if (!HasWorker(vm.runtime.state)) {
    // Saved, crashed or powered off: stopping discards the saved state (if
    // it lives in the VM's directory) and clears the error.
    if (vm.runtime.state == VmState::kSaved) {
      if (vm.runtime.saved_state == core_.inventory().SavedStatePath(vm.name))
        ::unlink(vm.runtime.saved_state.c_str());
      after.saved_state.clear();
    }
    return core_.Persist(vm, after);
  }
  const int64_t pid = vm.runtime.worker_pid;
  const std::string socket = vm.runtime.control_socket;
  vm.exit_expected = true;
  lock.Unlock();
  auto reply = CallWorker(socket, WorkerRequest{WorkerOp::kStop, ""},
                          core_.options().worker_call_timeout_ms);
  if (!reply) {
    base::LogWarning("vm " + vm.name + ": stop request failed (" + reply.error().message() +
                     "); killing worker pid " + std::to_string(pid));
    // Fails only for a worker that is gone already; AwaitWorkerExit tells.
    (void)core_.supervisor().Signal(pid, SIGKILL);
  }
  lock.Lock();
  base::Status waited = AwaitWorkerExit(vm, pid);
  vm.exit_expected = false;
  RETURN_IF_ERROR(waited);
  return core_.Persist(vm, after);
}

base::Status VmControl::PauseOrResume(VmEntry& vm, VmAction action) {
  std::string socket;
  {
    base::MutexLock lock(vm.mu);
    socket = vm.runtime.control_socket;
  }
  WorkerOp op = action == VmAction::kPause ? WorkerOp::kPause : WorkerOp::kResume;
  auto reply = CallWorker(socket, WorkerRequest{op, ""}, core_.options().worker_call_timeout_ms);
  if (!reply) return reply.error().Wrap(std::string(ToString(action)) + " vm " + vm.name);
  base::MutexLock lock(vm.mu);
  if (!HasWorker(vm.runtime.state))  // the worker exited meanwhile; its exit was recorded
    return base::Error(base::Code::kAborted,
                       "vm " + vm.name + " stopped during " + std::string(ToString(action)));
  RuntimeRecord after = vm.runtime;
  after.state = StateAfter(action);
  after.changed_unix_ms = UnixMillisNow();
  return core_.Persist(vm, after);
}

base::Status VmControl::Save(VmEntry& vm, const std::string& state_file) {
  base::MutexLock lock(vm.mu);
  const std::string path =
      state_file.empty() ? core_.inventory().SavedStatePath(vm.name) : state_file;
  const int64_t pid = vm.runtime.worker_pid;
  const std::string socket = vm.runtime.control_socket;
  vm.exit_expected = true;
  lock.Unlock();
  auto reply =
      CallWorker(socket, WorkerRequest{WorkerOp::kSave, path}, core_.options().save_timeout_ms);
  lock.Lock();
  if (!reply) {
    vm.exit_expected = false;
    base::Error error = reply.error().Wrap("save vm " + vm.name);
    if (vm.exited && vm.runtime.worker_pid == pid) {
      // The worker died during the save: nothing trustworthy was written.
      RuntimeRecord after = vm.runtime;
      after.state = VmState::kCrashed;
      after.worker_pid = 0;
      after.control_socket.clear();
      after.changed_unix_ms = UnixMillisNow();
      after.last_error = "worker " + vm.exit.Describe() + " during save";
      if (auto st = core_.Persist(vm, after); !st) base::LogError(st.error().ToString());
      return base::Error(base::Code::kAborted, "save vm " + vm.name + ": " + after.last_error);
    }
    return error;
  }
  // The state is on disk; the worker exits on its own after replying.
  base::Status waited = AwaitWorkerExit(vm, pid);
  vm.exit_expected = false;
  if (!waited) base::LogWarning(waited.error().ToString());
  RuntimeRecord after = vm.runtime;
  after.state = VmState::kSaved;
  after.saved_state = path;
  after.worker_pid = 0;
  after.control_socket.clear();
  after.last_error.clear();
  after.changed_unix_ms = UnixMillisNow();
  return core_.Persist(vm, after);
}

void VmControl::RefreshStateFromWorker(VmEntry& vm) {
  std::string socket;
  int64_t pid = 0;
  {
    base::MutexLock lock(vm.mu);
    if (!HasWorker(vm.runtime.state)) return;
    socket = vm.runtime.control_socket;
    pid = vm.runtime.worker_pid;
  }
  auto reply = CallWorker(socket, WorkerRequest{WorkerOp::kStatus, ""},
                          core_.options().worker_call_timeout_ms);
  if (!reply || reply->pid != pid) return;  // the supervisor reports an exit
  const VmState state = reply->state == "paused" ? VmState::kPaused : VmState::kRunning;
  base::MutexLock lock(vm.mu);
  if (vm.runtime.worker_pid != pid || vm.runtime.state == state || !HasWorker(vm.runtime.state))
    return;
  RuntimeRecord after = vm.runtime;
  after.state = state;
  after.changed_unix_ms = UnixMillisNow();
  if (auto st = core_.Persist(vm, after); !st) base::LogError(st.error().ToString());
}

bool VmControl::WorkerHasExited(const std::string& name, int64_t pid, int pidfd) {
  if (auto exited = PidfdWaitExit(pidfd, 0); exited && *exited) return true;
  // The worker writes its exit record just before it exits: it is leaving.
  if (!ReadExitRecord(core_.inventory().WorkerExitPath(name), pid)) return false;
  // Only a grace period for the exit to be reaped: the record already says
  // the worker is leaving, whatever the wait answers.
  (void)PidfdWaitExit(pidfd, kExitRecordWaitMs);
  return true;
}

}  // namespace appliance
