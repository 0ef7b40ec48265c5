// VmService: opening the inventory, recovery after a restart, worker exits,
// and the inventory's questions (host, list, show). Create, delete and the
// control actions are in vm_service_control.cc.
#include "daemon/vm_service.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "base/log.h"
#include "common/process.h"
#include "daemon/worker_exit.h"
#include "daemon/worker_launcher.h"
#include "guest_names.h"
#include "ipc/worker_protocol.h"

#ifndef FERRY_VERSION
#define FERRY_VERSION "unknown"
#endif

namespace appliance {

namespace {

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// Whether /proc/<pid>/cmdline is a ferry-vmm for vm_dir: the check that makes
// it safe to kill a worker that stopped answering.
bool IsWorkerFor(int64_t pid, const std::string& vm_dir) {
  auto cmdline = base::ReadFileToString("/proc/" + std::to_string(pid) + "/cmdline");
  if (!cmdline) return false;
  return cmdline->find("ferry-vmm") != std::string::npos &&
         cmdline->find(std::string("--vm-dir") + '\0' + vm_dir + '\0') != std::string::npos;
}

// Logs a runtime record that could not be written: the state in memory is
// right, and the next change writes it again.
void LogIfFailed(const base::Status& st) {
  if (!st) base::LogError(st.error().ToString());
}

}  // namespace

std::vector<std::string> GuestNames(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return names;
  const std::string suffix = "-guest.bin";
  while (dirent* e = ::readdir(d)) {
    std::string f = e->d_name;
    if (f.size() > suffix.size() && f.compare(f.size() - suffix.size(), suffix.size(), suffix) == 0)
      names.push_back(f.substr(0, f.size() - suffix.size()));
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

VmService::VmService(ServiceOptions options, Inventory inventory, base::Fd lock)
    : core_(std::move(options), std::move(inventory), std::move(lock)),
      control_(core_),
      moves_(core_, control_, departures_),
      departures_(core_, control_, moves_),
      incoming_(core_),
      checkpoints_(core_, control_, departures_) {}

VmService::~VmService() { core_.StopSupervisor(); }

base::Result<std::unique_ptr<VmService>> VmService::Open(ServiceOptions options) {
  ASSIGN_OR_RETURN(Inventory inventory, Inventory::Open(options.host.storage_root));
  std::string lock_path = options.host.storage_root + "/ferryd.lock";
  ASSIGN_OR_RETURN(base::Fd inventory_lock, base::Fd::Open(lock_path, O_RDWR | O_CREAT, 0600));
  if (::flock(inventory_lock.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      return base::Error(base::Code::kFailedPrecondition, "another ferryd already manages " +
                                                              options.host.storage_root +
                                                              " (it holds " + lock_path + ")");
    return base::ErrnoError("flock " + lock_path);
  }
  std::unique_ptr<VmService> service(
      new VmService(std::move(options), std::move(inventory), std::move(inventory_lock)));
  VmService* self = service.get();
  ASSIGN_OR_RETURN(auto supervisor, Supervisor::Start([self](const std::string& name, int64_t pid,
                                                             const ProcessExit& exit) {
                     self->OnWorkerExit(name, pid, exit);
                   }));
  service->core_.set_supervisor(std::move(supervisor));
  service->RemoveLeftovers();
  ASSIGN_OR_RETURN(std::vector<std::string> names, service->core_.inventory().ListNames());
  service->LoadVms(names);
  service->FinishMovesAtStart();  // after every VM is known: they may share files
  return service;
}

void VmService::RemoveLeftovers() {
  // A delete or a moved VM's clean-up that stopped after vm.toml went: the
  // VM no longer exists; finish removing ferry's files, so its directory
  // does not block a VM of that name arriving later.
  Inventory& inventory = core_.inventory();
  auto leftovers = inventory.ListNames(/*leftovers=*/true);
  if (!leftovers) return;
  for (const std::string& name : *leftovers) {
    const std::string dir = inventory.VmDir(name);
    if (auto st = inventory.Delete(name); !st)
      base::LogWarning("leftover " + dir + ": " + st.error().ToString());
    else if (Exists(dir))
      base::LogWarning("leftover " + dir + " keeps files ferry did not create: a vm " + name +
                       " cannot arrive here by a live move until it is removed");
    else
      base::LogInfo("removed the leftovers of vm " + name +
                    " (a delete or departure interrupted by a stop)");
  }
}

void VmService::LoadVms(const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    auto definition = core_.inventory().LoadDefinition(name);
    if (!definition) {
      // One unreadable VM must not keep the others from being served.
      base::LogError("vm " + name + " skipped: " + definition.error().ToString());
      continue;
    }
    auto vm = std::make_shared<VmEntry>(name);
    {
      base::MutexLock lock(vm->mu);  // not in the map yet: nobody else can hold it
      vm->definition = std::move(*definition);
    }
    core_.WithNames([&](VmRegistry::Names& map) { map.vms[name] = vm; });
    Recover(*vm);
  }
}

void VmService::Recover(VmEntry& vm) {
  base::MutexLock lock(vm.mu);
  const Inventory& inventory = core_.inventory();
  // A departure record makes the VM unusable here until it is settled,
  // whatever its worker did meanwhile: a damaged one counts as in doubt.
  if (auto departure = ReadDeparture(inventory.VmDir(vm.name)); !departure) {
    DepartureRecord unreadable;
    unreadable.state = DepartureState::kInDoubt;
    unreadable.message = departure.error().message();
    vm.departure = unreadable;
    base::LogError("vm " + vm.name + ": " + departure.error().ToString() +
                   "; the vm is held as in doubt until `ferry vm resolve " + vm.name + " --force`");
  } else if (departure->has_value()) {
    vm.departure = **departure;
    base::LogWarning("vm " + vm.name + ": a live move to " + vm.departure->host + " (migration " +
                     vm.departure->migration_id + ") is " +
                     std::string(ToString(vm.departure->state)));
  }
  auto loaded = inventory.LoadRuntime(vm.name);
  if (!loaded) {
    vm.runtime.state = VmState::kCrashed;
    vm.runtime.last_error = "runtime record unreadable: " + loaded.error().message();
    LogIfFailed(core_.Persist(vm, vm.runtime));
    return;
  }
  vm.runtime = *loaded;
  if (!HasWorker(vm.runtime.state)) return;

  const int64_t pid = vm.runtime.worker_pid;
  auto pidfd = PidfdOpen(pid);
  if (pidfd && control_.WorkerHasExited(vm.name, pid, pidfd->get()))
    pidfd = base::Error(base::Code::kNotFound, "exited");
  if (pidfd) return ReattachWorker(vm, std::move(*pidfd));
  // The worker exited while no ferryd watched it; its exit record says why.
  auto record = ReadExitRecord(inventory.WorkerExitPath(vm.name), pid);
  if (record && record->state == "moved") {
    vm.deleted = true;  // the VM runs on another host; FinishMovesAtStart removes it
    return;
  }
  RuntimeRecord after = RuntimeAfterWorkerExit(vm.runtime, record ? &*record : nullptr,
                                               ProcessExit{}, UnixMillisNow());
  if (!record)
    after.last_error = "worker pid " + std::to_string(pid) + " exited while ferryd was not running";
  base::LogWarning("vm " + vm.name + ": " + std::string(ToString(after.state)) +
                   (after.last_error.empty() ? "" : ": " + after.last_error));
  LogIfFailed(core_.Persist(vm, after));
}

void VmService::ReattachWorker(VmEntry& vm, base::Fd pidfd) {
  const int64_t pid = vm.runtime.worker_pid;
  auto reply = CallWorker(vm.runtime.control_socket, WorkerRequest{WorkerOp::kStatus, ""},
                          core_.options().worker_call_timeout_ms);
  if (reply && reply->pid == pid) {
    RuntimeRecord after = vm.runtime;
    after.state = reply->state == "paused" ? VmState::kPaused : VmState::kRunning;
    if (after.state != vm.runtime.state) LogIfFailed(core_.Persist(vm, after));
    auto watched = core_.supervisor().Watch(vm.name, pid, std::move(pidfd), /*is_child=*/false);
    if (watched) {
      base::LogInfo("vm " + vm.name + ": re-attached to worker pid " + std::to_string(pid));
      return;
    }
    base::LogError("vm " + vm.name + ": cannot watch worker: " + watched.error().ToString());
  }
  RuntimeRecord after = vm.runtime;
  after.state = VmState::kCrashed;
  after.worker_pid = 0;
  after.control_socket.clear();
  after.changed_unix_ms = UnixMillisNow();
  after.last_error =
      "worker pid " + std::to_string(pid) + " did not answer on its control socket " +
      vm.runtime.control_socket + ": " +
      (reply ? "it reported pid " + std::to_string(reply->pid) : reply.error().message());
  if (IsWorkerFor(pid, core_.inventory().VmDir(vm.name))) {
    // It is our worker, wedged: it still holds the VM's memory and disks, and
    // nothing could ever control it again.
    if (auto st = PidfdSignal(pidfd.get(), SIGKILL); !st)
      base::LogWarning("vm " + vm.name + ": kill worker pid " + std::to_string(pid) + ": " +
                       st.error().ToString());
    after.last_error += "; the worker was killed";
  }
  base::LogWarning("vm " + vm.name + ": crashed: " + after.last_error);
  LogIfFailed(core_.Persist(vm, after));
}

void VmService::FinishMovesAtStart() {
  for (const auto& vm : core_.All()) {
    int64_t pid = 0;
    {
      base::MutexLock lock(vm->mu);
      if (!vm->deleted) continue;  // Recover marks a VM whose worker exited "moved"
      pid = vm->runtime.worker_pid;
    }
    auto record = ReadExitRecord(core_.inventory().WorkerExitPath(vm->name), pid);
    base::LogInfo("vm " + vm->name + ": its worker moved it to another host while ferryd was down");
    moves_.FinishMovedVm(vm->name, record ? record->live_move : "");
  }
}

void VmService::OnWorkerExit(const std::string& name, int64_t pid, const ProcessExit& exit) {
  std::shared_ptr<VmEntry> vm =
      core_.WithNames([&](VmRegistry::Names& map) -> std::shared_ptr<VmEntry> {
        auto it = map.vms.find(name);
        return it == map.vms.end() ? nullptr : it->second;
      });
  if (vm == nullptr) return;
  base::MutexLock lock(vm->mu);
  if (vm->runtime.worker_pid != pid) return;  // an older worker of this VM
  vm->exited = true;
  vm->exit = exit;
  auto record = ReadExitRecord(core_.inventory().WorkerExitPath(name), pid);
  if (record && record->state == "moved" && !(exit.known && exit.signaled)) {
    // A live move committed (even if a stop raced with it): the VM runs on
    // another host now (moved_vm.cc).
    vm->deleted = true;
    vm->exited_cv.NotifyAll();
    lock.Unlock();
    moves_.FinishMovedVm(name, record->live_move);
    return;
  }
  if (!vm->exit_expected) {
    RuntimeRecord after =
        RuntimeAfterWorkerExit(vm->runtime, record ? &*record : nullptr, exit, UnixMillisNow());
    base::LogInfo("vm " + name + ": " + std::string(ToString(after.state)) +
                  (after.last_error.empty() ? "" : ": " + after.last_error));
    if (auto st = core_.Persist(*vm, after); !st)
      base::LogError("vm " + name + ": " + st.error().ToString());
  }
  vm->exited_cv.NotifyAll();
}

HostInfo VmService::Host() {
  char hostname[256] = {};
  ::gethostname(hostname, sizeof hostname - 1);
  HostInfo host;
  host.hostname = hostname;
  host.version = FERRY_VERSION;
  for (auto& vm : core_.All()) {
    base::MutexLock lock(vm->mu);
    ++host.vms;
    if (HasWorker(vm->runtime.state)) ++host.vms_running;
  }
  const ServiceOptions& options = core_.options();
  host.settings = options.host;
  host.guest_dir = options.guest_dir;
  host.guests = GuestNames(options.guest_dir);
  host.kvm_device = options.kvm_device;
  host.kvm_available = ::access(options.kvm_device.c_str(), R_OK | W_OK) == 0;
  host.tls_fingerprint = options.tls_fingerprint;
  host.tls_trusts_peers = options.peer_tls != nullptr;
  return host;
}

std::vector<VmView> VmService::List() {
  std::vector<VmView> list;
  for (auto& vm : core_.All()) {
    base::MutexLock lock(vm->mu);
    if (!vm->deleted) list.push_back(core_.View(*vm));
  }
  return list;
}

base::Result<VmView> VmService::Show(const std::string& name) {
  ASSIGN_OR_RETURN(std::shared_ptr<VmEntry> vm, core_.Find(name));
  VmView view;
  {
    base::MutexLock lock(vm->mu);
    view = core_.View(*vm);
  }
  if (HasWorker(view.runtime.state)) {
    // Live numbers are a bonus: a worker busy saving may not answer in time,
    // and show must still answer.
    auto reply =
        CallWorker(view.runtime.control_socket, WorkerRequest{WorkerOp::kStatus, ""}, 2000);
    if (reply) view.live = VmView::Live{reply->stats, reply->state};
  }
  return view;
}

base::Result<std::string> VmService::ConsolePath(const std::string& name) {
  ASSIGN_OR_RETURN(std::shared_ptr<VmEntry> vm, core_.Find(name));
  return core_.inventory().ConsolePath(name);
}

}  // namespace appliance
