// VmService, live moves, destination side: taking over a VM whose incoming
// worker committed (PeerService decides when; docs/live_move.md).
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <optional>

#include "config/names.h"
#include "common/process.h"
#include "daemon/runtime_record.h"
#include "daemon/vm_service.h"
#include "base/fd.h"
#include "base/log.h"
#include "ipc/vm_dir_files.h"

namespace appliance {
namespace {

// The parent pid from /proc/<pid>/stat ("pid (comm) state ppid ..."); the
// comm may contain spaces and parentheses, so parse after the last ')'.
int64_t ParentPid(int64_t pid) {
  auto stat = base::ReadFileToString("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return 0;
  size_t close = stat->rfind(')');
  if (close == std::string::npos) return 0;
  char state = 0;
  long long ppid = 0;
  if (std::sscanf(stat->c_str() + close + 1, " %c %lld", &state, &ppid) != 2) return 0;
  return ppid;
}

}  // namespace

bool VmService::HasVm(const std::string& name) {
  {
    std::lock_guard lock(map_mu_);
    if (vms_.count(name) != 0) return true;
  }
  // A directory with a vm.toml that Open skipped (unreadable) still takes the name.
  return inventory_.Exists(name);
}

std::string VmService::IncomingNameConflict(const std::string& name) {
  std::lock_guard map_lock(map_mu_);
  return IncomingNameConflictLocked(name);
}

std::string VmService::IncomingNameConflictLocked(const std::string& name) {
  if (vms_.count(name) != 0 || inventory_.Exists(name)) return "a vm named " + name + " already exists on this host";
  if (incoming_names_.count(name) != 0) return "a vm named " + name + " is already moving here";
  struct stat st{};
  if (::lstat(inventory_.VmDir(name).c_str(), &st) == 0)
    return inventory_.VmDir(name) + " exists without a vm.toml (left over from an earlier vm?): remove it first";
  return "";
}

base::Status VmService::ReserveIncomingName(const std::string& name) {
  RETURN_IF_ERROR(config::ValidateVmName(name));
  std::lock_guard map_lock(map_mu_);
  if (std::string conflict = IncomingNameConflictLocked(name); !conflict.empty())
    return base::Error(base::Code::kAlreadyExists, conflict);
  incoming_names_.insert(name);
  return base::Ok();
}

void VmService::ReleaseIncomingName(const std::string& name) {
  std::lock_guard map_lock(map_mu_);
  incoming_names_.erase(name);
}

base::Status VmService::AdoptIncoming(const std::string& name, const std::string& incoming_dir,
                                      int64_t worker_pid, const std::string& control_socket, bool paused) {
  RETURN_IF_ERROR(config::ValidateVmName(name));
  // map_mu_ for the whole take-over: the name must not be taken meanwhile
  // (Create checks the map under it too).
  std::lock_guard map_lock(map_mu_);
  if (vms_.count(name) != 0 || inventory_.Exists(name))
    return base::Error(base::Code::kAlreadyExists, "a vm named " + name + " already exists");
  const std::string vm_dir = inventory_.VmDir(name);

  RuntimeRecord runtime;
  runtime.changed_unix_ms = UnixMillisNow();
  std::optional<base::Fd> pidfd;
  if (worker_pid > 0) {
    if (auto fd = PidfdOpen(worker_pid)) pidfd = std::move(*fd);
  }
  if (pidfd) {
    runtime.state = paused ? VmState::kPaused : VmState::kRunning;
    runtime.worker_pid = worker_pid;
    runtime.control_socket = control_socket;
  } else {
    runtime.state = VmState::kCrashed;
    runtime.last_error = "the incoming worker exited after the live move committed";
  }
  // The record goes in first, so the rename moves the VM and its state in
  // one step: a ferryd stopped right after it finds a running VM with its
  // worker, not a stopped one that could be started a second time.
  if (auto st = base::WriteFileAtomically(incoming_dir + "/runtime.json", FormatRuntime(runtime)); !st)
    return st.error().Wrap("adopt incoming vm " + name);
  if (::rename(incoming_dir.c_str(), vm_dir.c_str()) != 0)
    return base::ErrnoError("move " + incoming_dir + " to " + vm_dir);
  // The worker was started with --vm-dir incoming_dir and keeps writing
  // there (worker.exit, vm.toml after a storage move): a symlink keeps
  // those paths valid. PeerService removes it once the worker has exited.
  if (::symlink(vm_dir.c_str(), incoming_dir.c_str()) != 0)
    base::LogWarning("vm " + name + ": symlink " + incoming_dir + ": " + std::strerror(errno));
  (void)base::SyncParentDirectory(vm_dir);
  incoming_names_.erase(name);
  // The move's own files: nothing reads them once the VM is adopted, and
  // left there they would keep vms/<name> from being removed when the VM
  // is deleted or moves on.
  for (const char* file : {kCommittedMarker, kIncomingPlanFile}) ::unlink((vm_dir + "/" + file).c_str());

  auto definition = inventory_.LoadDefinition(name);
  if (!definition) return definition.error().Wrap("adopt incoming vm " + name);
  auto vm = std::make_shared<Vm>();
  vm->name = name;
  vm->definition = std::move(*definition);
  // vm is not visible to anyone else until it is in the map, so its mu is
  // not needed yet (as in Create).
  vm->runtime = runtime;
  vms_[name] = vm;
  if (pidfd) {
    // We launched it unless this ferryd restarted since; only a parent may reap.
    const bool is_child = ParentPid(worker_pid) == int64_t(::getpid());
    if (auto st = supervisor_->Watch(name, worker_pid, std::move(*pidfd), is_child); !st) {
      base::LogError("vm " + name + ": cannot watch worker: " + st.error().ToString());
    }
  }
  base::LogInfo("vm " + name + ": adopted from a live move (" + std::string(ToString(runtime.state)) +
                (runtime.worker_pid ? ", worker pid " + std::to_string(runtime.worker_pid) : "") + ")");
  return base::Ok();
}

}  // namespace appliance
