// VmService control actions: start, restore, stop, pause, resume, save. Each
// runs under the VM's op_mu; worker calls happen without mu held.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/vm_service.h"
#include "daemon/worker_launcher.h"
#include "ipc/worker_protocol.h"
#include "base/log.h"

namespace appliance {

using nlohmann::json;

base::Result<json> VmService::Act(const std::string& name, VmAction action,
                                  const std::string& state_file) {
  ASSIGN_OR_RETURN(std::shared_ptr<Vm> vm, Find(name));
  if (!state_file.empty() && state_file[0] != '/')
    return base::Error(base::Code::kInvalidArgument,
                       "state file path must be absolute, not \"" + state_file + "\"");
  std::lock_guard op(vm->op_mu);
  {
    std::lock_guard lock(vm->mu);
    if (vm->deleted) return base::Error(base::Code::kNotFound, "no vm named " + name);
    RETURN_IF_ERROR(CheckAction(name, vm->runtime.state, action));
    // A live move is aborted by the worker on stop or save; an offline move
    // copies files no worker may open meanwhile.
    if (vm->storage_move && (action == VmAction::kStart || action == VmAction::kRestore))
      return base::Error(base::Code::kFailedPrecondition,
                         "cannot " + std::string(ToString(action)) + " vm " + name +
                             ": its storage is being moved (see ferry jobs)");
  }
  // Each of these could make a VM whose live move may have committed run
  // here too (a save, through a later restore). Stop and pause cannot.
  if (action == VmAction::kStart || action == VmAction::kRestore || action == VmAction::kResume ||
      action == VmAction::kSave)
    RETURN_IF_ERROR(SettleDeparture(*vm, std::string(ToString(action))));
  switch (action) {
    case VmAction::kStart:
    case VmAction::kRestore:
      RETURN_IF_ERROR(Launch(*vm, action, state_file));
      break;
    case VmAction::kStop:
      RETURN_IF_ERROR(Stop(*vm));
      break;
    case VmAction::kPause:
    case VmAction::kResume:
      RETURN_IF_ERROR(PauseOrResume(*vm, action));
      break;
    case VmAction::kSave:
      RETURN_IF_ERROR(Save(*vm, state_file));
      break;
    case VmAction::kDelete:
      return base::Error(base::Code::kInvalidArgument, "delete is not a vm action; use DELETE");
  }
  std::lock_guard lock(vm->mu);
  return Describe(*vm);
}

base::Status VmService::Launch(Vm& vm, VmAction action, const std::string& state_file) {
  LaunchSpec spec;
  spec.worker_binary = options_.worker_binary;
  spec.vm_dir = inventory_.VmDir(vm.name);
  spec.control_socket = inventory_.ControlSocketPath(vm.name);
  spec.log_path = inventory_.WorkerLogPath(vm.name);
  spec.exit_record_path = inventory_.WorkerExitPath(vm.name);
  spec.error_path = inventory_.WorkerErrorPath(vm.name);
  const bool restore = action == VmAction::kRestore;
  if (restore) {
    std::lock_guard lock(vm.mu);
    spec.restore_path = !state_file.empty() ? state_file
                        : !vm.runtime.saved_state.empty() ? vm.runtime.saved_state
                                                          : inventory_.SavedStatePath(vm.name);
    struct stat st{};
    if (::stat(spec.restore_path.c_str(), &st) != 0)
      return base::Error(base::Code::kNotFound,
                         "cannot restore vm " + vm.name + ": no saved state at " + spec.restore_path);
  }
  base::LogInfo("vm " + vm.name + ": " + (restore ? "restoring from " + spec.restore_path : "starting"));
  auto launched = LaunchWorker(spec, options_.worker_ready_timeout_ms);
  if (!launched) {
    base::Error error = launched.error();
    if (restore && error.code() == base::Code::kDataLoss) {
      // The worker verified the file before building anything: say so, and
      // name the file if its message does not.
      std::string detail = error.message();
      if (detail.find(spec.restore_path) == std::string::npos) detail = spec.restore_path + ": " + detail;
      error = base::Error(base::Code::kDataLoss,
                          "cannot restore vm " + vm.name + ": corrupt state file, nothing was restored: " + detail);
    } else {
      error = error.Wrap("cannot " + std::string(ToString(action)) + " vm " + vm.name);
    }
    std::lock_guard lock(vm.mu);
    RuntimeRecord after = vm.runtime;
    after.last_error = error.message();
    (void)Persist(vm, after);
    return error;
  }
  {
    std::lock_guard lock(vm.mu);
    RuntimeRecord after;
    after.state = VmState::kRunning;
    after.worker_pid = launched->pid;
    after.control_socket = spec.control_socket;
    after.changed_unix_ms = UnixMillisNow();
    vm.exit_expected = false;
    vm.exited = false;
    // The record must name the pid before the supervisor can report its exit.
    auto persisted = Persist(vm, after);
    if (!persisted) base::LogError(persisted.error().ToString());
  }
  RETURN_IF_ERROR(supervisor_->Watch(vm.name, launched->pid, std::move(launched->pidfd), /*is_child=*/true));
  // The state file in the VM's directory is stale once the VM runs again (its
  // disks move on), so it goes; a file the admin named is theirs to keep.
  if (restore && spec.restore_path == inventory_.SavedStatePath(vm.name))
    ::unlink(spec.restore_path.c_str());
  base::LogInfo("vm " + vm.name + ": running, worker pid " + std::to_string(launched->pid));
  return base::Ok();
}

base::Status VmService::AwaitWorkerExit(Vm& vm, Lock& lock, int64_t pid) {
  auto exited = [&] { return vm.exited || vm.runtime.worker_pid != pid; };
  if (vm.exited_cv.wait_for(lock, std::chrono::milliseconds(options_.exit_timeout_ms), exited))
    return base::Ok();
  base::LogWarning("vm " + vm.name + ": worker pid " + std::to_string(pid) + " did not exit within " +
                   std::to_string(options_.exit_timeout_ms) + " ms; killing it");
  (void)supervisor_->Signal(pid, SIGKILL);
  if (vm.exited_cv.wait_for(lock, std::chrono::milliseconds(options_.exit_timeout_ms), exited))
    return base::Ok();
  return base::Error(base::Code::kInternal, "worker pid " + std::to_string(pid) + " of vm " + vm.name +
                                                " did not exit even after SIGKILL");
}

base::Status VmService::Stop(Vm& vm) {
  Lock lock(vm.mu);
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
      if (vm.runtime.saved_state == inventory_.SavedStatePath(vm.name))
        ::unlink(vm.runtime.saved_state.c_str());
      after.saved_state.clear();
    }
    return Persist(vm, after);
  }
  const int64_t pid = vm.runtime.worker_pid;
  const std::string socket = vm.runtime.control_socket;
  vm.exit_expected = true;
  lock.unlock();
  auto reply = CallWorker(socket, WorkerRequest{WorkerOp::kStop, ""}, options_.worker_call_timeout_ms);
  if (!reply) {
    base::LogWarning("vm " + vm.name + ": stop request failed (" + reply.error().message() +
                     "); killing worker pid " + std::to_string(pid));
    (void)supervisor_->Signal(pid, SIGKILL);
  }
  lock.lock();
  base::Status waited = AwaitWorkerExit(vm, lock, pid);
  vm.exit_expected = false;
  RETURN_IF_ERROR(waited);
  return Persist(vm, after);
}

base::Status VmService::PauseOrResume(Vm& vm, VmAction action) {
  std::string socket;
  {
    std::lock_guard lock(vm.mu);
    socket = vm.runtime.control_socket;
  }
  WorkerOp op = action == VmAction::kPause ? WorkerOp::kPause : WorkerOp::kResume;
  auto reply = CallWorker(socket, WorkerRequest{op, ""}, options_.worker_call_timeout_ms);
  if (!reply) return reply.error().Wrap(std::string(ToString(action)) + " vm " + vm.name);
  std::lock_guard lock(vm.mu);
  if (!HasWorker(vm.runtime.state))  // the worker exited meanwhile; its exit was recorded
    return base::Error(base::Code::kAborted, "vm " + vm.name + " stopped during " + std::string(ToString(action)));
  RuntimeRecord after = vm.runtime;
  after.state = StateAfter(action);
  after.changed_unix_ms = UnixMillisNow();
  return Persist(vm, after);
}

base::Status VmService::Save(Vm& vm, const std::string& state_file) {
  Lock lock(vm.mu);
  const std::string path = state_file.empty() ? inventory_.SavedStatePath(vm.name) : state_file;
  const int64_t pid = vm.runtime.worker_pid;
  const std::string socket = vm.runtime.control_socket;
  vm.exit_expected = true;
  lock.unlock();
  auto reply = CallWorker(socket, WorkerRequest{WorkerOp::kSave, path}, options_.save_timeout_ms);
  lock.lock();
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
      (void)Persist(vm, after);
      return base::Error(base::Code::kAborted, "save vm " + vm.name + ": " + after.last_error);
    }
    return error;
  }
  // The state is on disk; the worker exits on its own after replying.
  base::Status waited = AwaitWorkerExit(vm, lock, pid);
  vm.exit_expected = false;
  if (!waited) base::LogWarning(waited.error().ToString());
  RuntimeRecord after = vm.runtime;
  after.state = VmState::kSaved;
  after.saved_state = path;
  after.worker_pid = 0;
  after.control_socket.clear();
  after.last_error.clear();
  after.changed_unix_ms = UnixMillisNow();
  return Persist(vm, after);
}

}  // namespace appliance
