// IncomingVms: a VM's name held while it arrives by a live move, and its
// adoption once the move committed (incoming_vms.h).
#include "daemon/incoming_vms.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <optional>

#include "base/fd.h"
#include "base/log.h"
#include "common/process.h"
#include "config/names.h"
#include "daemon/runtime_record.h"
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

bool IncomingVms::HasVm(const std::string& name) {
  if (core_.WithNames([&](VmRegistry::Names& names) { return names.vms.count(name) != 0; }))
    return true;
  // A directory with a vm.toml that Open skipped (unreadable) still takes the name.
  return core_.inventory().Exists(name);
}

std::string IncomingVms::NameConflict(const std::string& name) {
  return core_.WithNames([&](VmRegistry::Names& names) { return ConflictLocked(names, name); });
}

std::string IncomingVms::ConflictLocked(const VmRegistry::Names& names, const std::string& name) {
  const Inventory& inventory = core_.inventory();
  if (names.vms.count(name) != 0 || inventory.Exists(name))
    return "a vm named " + name + " already exists on this host";
  if (names.incoming.count(name) != 0) return "a vm named " + name + " is already moving here";
  struct stat st {};
  if (::lstat(inventory.VmDir(name).c_str(), &st) == 0)
    return inventory.VmDir(name) +
           " exists without a vm.toml (left over from an earlier vm?): remove it first";
  return "";
}

base::Status IncomingVms::ReserveName(const std::string& name) {
  RETURN_IF_ERROR(config::ValidateVmName(name));
  return core_.WithNames([&](VmRegistry::Names& names) -> base::Status {
    if (std::string conflict = ConflictLocked(names, name); !conflict.empty())
      return base::Error(base::Code::kAlreadyExists, conflict);
    names.incoming.insert(name);
    return base::Ok();
  });
}

void IncomingVms::ReleaseName(const std::string& name) {
  core_.WithNames([&](VmRegistry::Names& names) { names.incoming.erase(name); });
}

base::Status IncomingVms::MoveIntoInventory(const std::string& name,
                                            const std::string& incoming_dir,
                                            const RuntimeRecord& runtime) {
  const std::string vm_dir = core_.inventory().VmDir(name);
  // The record goes in first, so the rename moves the VM and its state in
  // one step: a ferryd stopped right after it finds a running VM with its
  // worker, not a stopped one that could be started a second time.
  if (auto st = base::WriteFileAtomically(incoming_dir + "/runtime.json", FormatRuntime(runtime));
      !st)
    return st.error().Wrap("adopt incoming vm " + name);
  if (::rename(incoming_dir.c_str(), vm_dir.c_str()) != 0)
    return base::ErrnoError("move " + incoming_dir + " to " + vm_dir);
  // The worker was started with --vm-dir incoming_dir and keeps writing
  // there (worker.exit, vm.toml after a storage move): a symlink keeps
  // those paths valid. PeerService removes it once the worker has exited.
  if (::symlink(vm_dir.c_str(), incoming_dir.c_str()) != 0)
    base::LogWarning("vm " + name + ": symlink " + incoming_dir + ": " + std::strerror(errno));
  if (auto st = base::SyncParentDirectory(vm_dir); !st)
    base::LogWarning("vm " + name + ": " + st.error().ToString());
  return base::Ok();
}

base::Status IncomingVms::Adopt(const std::string& name, const std::string& incoming_dir,
                                int64_t worker_pid, const std::string& control_socket,
                                bool paused) {
  RETURN_IF_ERROR(config::ValidateVmName(name));
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
  // map_mu for the whole take-over: the name must not be taken meanwhile
  // (Create checks the map under it too).
  return core_.WithNames([&](VmRegistry::Names& names) -> base::Status {
    Inventory& inventory = core_.inventory();
    if (names.vms.count(name) != 0 || inventory.Exists(name))
      return base::Error(base::Code::kAlreadyExists, "a vm named " + name + " already exists");
    RETURN_IF_ERROR(MoveIntoInventory(name, incoming_dir, runtime));
    names.incoming.erase(name);
    // The move's own files: nothing reads them once the VM is adopted, and
    // left there they would keep vms/<name> from being removed when the VM
    // is deleted or moves on.
    const std::string vm_dir = inventory.VmDir(name);
    for (const char* file : {kCommittedMarker, kIncomingPlanFile, kIncomingTlsFile})
      ::unlink((vm_dir + "/" + file).c_str());

    auto definition = inventory.LoadDefinition(name);
    if (!definition) return definition.error().Wrap("adopt incoming vm " + name);
    auto vm = std::make_shared<VmEntry>(name);
    {
      // vm is not visible to anyone else until it is in the map, so its mu
      // is uncontended (as in Create).
      base::MutexLock vm_lock(vm->mu);
      vm->definition = std::move(*definition);
      vm->runtime = runtime;
    }
    names.vms[name] = vm;
    if (pidfd) {
      // We launched it unless this ferryd restarted since; only a parent may reap.
      const bool is_child = ParentPid(worker_pid) == int64_t(::getpid());
      if (auto st = core_.supervisor().Watch(name, worker_pid, std::move(*pidfd), is_child); !st)
        base::LogError("vm " + name + ": cannot watch worker: " + st.error().ToString());
    }
    base::LogInfo(
        "vm " + name + ": adopted from a live move (" + std::string(ToString(runtime.state)) +
        (runtime.worker_pid ? ", worker pid " + std::to_string(runtime.worker_pid) : "") + ")");
    return base::Ok();
  });
}

}  // namespace appliance
