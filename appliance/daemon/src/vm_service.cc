// VmService: inventory queries, create/delete, recovery after a restart and
// worker exits. The control actions are in vm_service_control.cc.
#include "config/names.h"
#include "daemon/vm_service.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>


#include "daemon/vm_stats_json.h"
#include "daemon/worker_exit.h"
#include "daemon/worker_launcher.h"
#include "ipc/worker_protocol.h"
#include "base/escape.h"
#include "base/log.h"
#include "storage/image_check.h"

#ifndef FERRY_VERSION
#define FERRY_VERSION "unknown"
#endif

namespace appliance {

using nlohmann::json;

namespace {

bool FileExists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

// The guest names available in dir: files named <name>-guest.bin.
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

// Whether /proc/<pid>/cmdline is a ferry-vmm for vm_dir: the check that makes
// it safe to kill a worker that stopped answering.
bool IsWorkerFor(int64_t pid, const std::string& vm_dir) {
  auto cmdline = base::ReadFileToString("/proc/" + std::to_string(pid) + "/cmdline");
  if (!cmdline) return false;
  return cmdline->find("ferry-vmm") != std::string::npos &&
         cmdline->find(std::string("--vm-dir") + '\0' + vm_dir + '\0') != std::string::npos;
}

}  // namespace

VmService::VmService(ServiceOptions options, Inventory inventory)
    : options_(std::move(options)), inventory_(std::move(inventory)) {}

VmService::~VmService() { supervisor_.reset(); }

base::Result<std::unique_ptr<VmService>> VmService::Open(ServiceOptions options) {
  ASSIGN_OR_RETURN(Inventory inventory, Inventory::Open(options.host.storage_root));
  std::string lock_path = options.host.storage_root + "/ferryd.lock";
  ASSIGN_OR_RETURN(base::Fd inventory_lock, base::Fd::Open(lock_path, O_RDWR | O_CREAT, 0600));
  if (::flock(inventory_lock.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      return base::Error(base::Code::kFailedPrecondition,
                         "another ferryd already manages " + options.host.storage_root + " (it holds " + lock_path + ")");
    return base::ErrnoError("flock " + lock_path);
  }
  std::unique_ptr<VmService> service(new VmService(std::move(options), std::move(inventory)));
  service->lock_ = std::move(inventory_lock);
  VmService* self = service.get();
  ASSIGN_OR_RETURN(service->supervisor_,
                   Supervisor::Start([self](const std::string& name, int64_t pid, const ProcessExit& exit) {
                     self->OnWorkerExit(name, pid, exit);
                   }));
  // A delete or a moved VM's clean-up that stopped after vm.toml went: the
  // VM no longer exists; finish removing ferry's files, so its directory
  // does not block a VM of that name arriving later.
  if (auto leftovers = service->inventory_.ListNames(/*leftovers=*/true); leftovers) {
    for (const std::string& name : *leftovers) {
      const std::string dir = service->inventory_.VmDir(name);
      if (auto st = service->inventory_.Delete(name); !st)
        base::LogWarning("leftover " + dir + ": " + st.error().ToString());
      else if (FileExists(dir))
        base::LogWarning("leftover " + dir + " keeps files ferry did not create: a vm " + name +
                         " cannot arrive here by a live move until it is removed");
      else
        base::LogInfo("removed the leftovers of vm " + name + " (a delete or departure interrupted by a stop)");
    }
  }
  ASSIGN_OR_RETURN(std::vector<std::string> names, service->inventory_.ListNames());
  for (const std::string& name : names) {
    auto definition = service->inventory_.LoadDefinition(name);
    if (!definition) {
      // One unreadable VM must not keep the others from being served.
      base::LogError("vm " + name + " skipped: " + definition.error().ToString());
      continue;
    }
    auto vm = std::make_shared<Vm>();
    vm->name = name;
    vm->definition = std::move(*definition);
    {
      std::lock_guard lock(service->map_mu_);
      service->vms_[name] = vm;
    }
    service->Recover(*vm);
  }
  service->FinishMovesAtStart();  // after every VM is known: they may share files
  return service;
}

void VmService::Recover(Vm& vm) {
  std::lock_guard lock(vm.mu);
  // A departure record makes the VM unusable here until it is settled,
  // whatever its worker did meanwhile: a damaged one counts as in doubt.
  if (auto departure = ReadDeparture(inventory_.VmDir(vm.name)); !departure) {
    DepartureRecord unreadable;
    unreadable.state = DepartureState::kInDoubt;
    unreadable.message = departure.error().message();
    vm.departure = unreadable;
    base::LogError("vm " + vm.name + ": " + departure.error().ToString() +
                   "; the vm is held as in doubt until `ferry vm resolve " + vm.name + " --force`");
  } else if (departure->has_value()) {
    vm.departure = **departure;
    base::LogWarning("vm " + vm.name + ": a live move to " + vm.departure->host + " (migration " +
                     vm.departure->migration_id + ") is " + std::string(ToString(vm.departure->state)));
  }
  auto loaded = inventory_.LoadRuntime(vm.name);
  if (!loaded) {
    vm.runtime.state = VmState::kCrashed;
    vm.runtime.last_error = "runtime record unreadable: " + loaded.error().message();
    (void)Persist(vm, vm.runtime);
    return;
  }
  vm.runtime = *loaded;
  if (!HasWorker(vm.runtime.state)) return;

  const int64_t pid = vm.runtime.worker_pid;
  auto pidfd = PidfdOpen(pid);
  if (pidfd && WorkerHasExited(vm.name, pid, pidfd->get())) pidfd = base::Error(base::Code::kNotFound, "exited");
  if (!pidfd) {
    // The worker exited while no ferryd watched it; its exit record says why.
    auto record = ReadExitRecord(inventory_.WorkerExitPath(vm.name), pid);
    if (record && record->state == "moved") {
      vm.deleted = true;  // the VM runs on another host; FinishMovesAtStart removes it
      return;
    }
    RuntimeRecord after = RuntimeAfterWorkerExit(vm.runtime, record ? &*record : nullptr,
                                                 ProcessExit{}, UnixMillisNow());
    if (!record) after.last_error = "worker pid " + std::to_string(pid) + " exited while ferryd was not running";
    base::LogWarning("vm " + vm.name + ": " + std::string(ToString(after.state)) +
                     (after.last_error.empty() ? "" : ": " + after.last_error));
    (void)Persist(vm, after);
    return;
  }
  auto reply = CallWorker(vm.runtime.control_socket, WorkerRequest{WorkerOp::kStatus, ""},
                          options_.worker_call_timeout_ms);
  if (reply && reply->pid == pid) {
    RuntimeRecord after = vm.runtime;
    after.state = reply->state == "paused" ? VmState::kPaused : VmState::kRunning;
    if (after.state != vm.runtime.state) (void)Persist(vm, after);
    auto watched = supervisor_->Watch(vm.name, pid, std::move(*pidfd), /*is_child=*/false);
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
  after.last_error = "worker pid " + std::to_string(pid) + " did not answer on its control socket " +
                     vm.runtime.control_socket + ": " +
                     (reply ? "it reported pid " + std::to_string(reply->pid) : reply.error().message());
  if (IsWorkerFor(pid, inventory_.VmDir(vm.name))) {
    // It is our worker, wedged: it still holds the VM's memory and disks, and
    // nothing could ever control it again.
    (void)PidfdSignal(pidfd->get(), SIGKILL);
    after.last_error += "; the worker was killed";
  }
  base::LogWarning("vm " + vm.name + ": crashed: " + after.last_error);
  (void)Persist(vm, after);
}

void VmService::OnWorkerExit(const std::string& name, int64_t pid, const ProcessExit& exit) {
  std::shared_ptr<Vm> vm;
  {
    std::lock_guard lock(map_mu_);
    auto it = vms_.find(name);
    if (it == vms_.end()) return;
    vm = it->second;
  }
  std::unique_lock lock(vm->mu);
  if (vm->runtime.worker_pid != pid) return;  // an older worker of this VM
  vm->exited = true;
  vm->exit = exit;
  auto record = ReadExitRecord(inventory_.WorkerExitPath(name), pid);
  if (record && record->state == "moved" && !(exit.known && exit.signaled)) {
    // A live move committed (even if a stop raced with it): the VM runs on
    // another host now (vm_service_moved.cc).
    vm->deleted = true;
    vm->exited_cv.notify_all();
    lock.unlock();
    FinishMovedVm(name, record->live_move);
    return;
  }
  if (!vm->exit_expected) {
    RuntimeRecord after =
        RuntimeAfterWorkerExit(vm->runtime, record ? &*record : nullptr, exit, UnixMillisNow());
    base::LogInfo("vm " + name + ": " + std::string(ToString(after.state)) +
                  (after.last_error.empty() ? "" : ": " + after.last_error));
    if (auto st = Persist(*vm, after); !st) base::LogError("vm " + name + ": " + st.error().ToString());
  }
  vm->exited_cv.notify_all();
}

base::Status VmService::Persist(Vm& vm, const RuntimeRecord& runtime) {
  vm.runtime = runtime;
  if (vm.deleted) return base::Ok();
  auto st = inventory_.SaveRuntime(vm.name, runtime);
  if (!st) return st.error().Wrap("record state of vm " + vm.name);
  return base::Ok();
}

base::Result<std::shared_ptr<VmService::Vm>> VmService::Find(const std::string& name) {
  RETURN_IF_ERROR(config::ValidateVmName(name));
  std::lock_guard lock(map_mu_);
  auto it = vms_.find(name);
  if (it == vms_.end()) return base::Error(base::Code::kNotFound, "no vm named " + name);
  return it->second;
}

json VmService::Describe(const Vm& vm) const {
  const RuntimeRecord& r = vm.runtime;
  json j = {{"name", vm.name},
            {"id", vm.definition.id},
            {"state", ToString(r.state)},
            {"definition", DefinitionToJson(vm.definition)},
            {"last_error", r.last_error},
            {"saved_state", r.saved_state},
            {"changed_unix_ms", r.changed_unix_ms},
            {"dir", inventory_.VmDir(vm.name)},
            {"console", inventory_.ConsolePath(vm.name)}};
  if (HasWorker(r.state))
    j["worker"] = {{"pid", r.worker_pid}, {"control_socket", r.control_socket}};
  else
    j["worker"] = nullptr;
  if (vm.departure) {
    j["departure"] = ToJson(*vm.departure);
    // Moving but unwatched: a restarted ferryd has not taken the move up
    // (yet); the next action or `ferry vm resolve` asks the destination.
    j["departure"]["watched"] = vm.storage_move;
  } else {
    j["departure"] = nullptr;
  }
  return j;
}

json VmService::HostInfo() {
  char hostname[256] = {};
  ::gethostname(hostname, sizeof hostname - 1);
  size_t total = 0, running = 0;
  std::vector<std::shared_ptr<Vm>> vms;
  {
    std::lock_guard lock(map_mu_);
    for (auto& [name, vm] : vms_) vms.push_back(vm);
  }
  for (auto& vm : vms) {
    std::lock_guard lock(vm->mu);
    ++total;
    if (HasWorker(vm->runtime.state)) ++running;
  }
  const config::HostSettings& h = options_.host;
  return json{{"hostname", hostname},
              {"version", FERRY_VERSION},
              {"config", h.source_path},
              {"storage_root", h.storage_root},
              {"api_socket", h.api_socket},
              {"guest_dir", options_.guest_dir},
              {"guests", GuestNames(options_.guest_dir)},
              {"kvm_device", options_.kvm_device},
              {"kvm_available", ::access(options_.kvm_device.c_str(), R_OK | W_OK) == 0},
              {"vms", total},
              {"vms_running", running},
              {"migration",
               {{"incoming_enabled", h.incoming_enabled},
                {"outgoing_enabled", h.outgoing_enabled},
                {"max_live_moves", h.max_live_moves},
                {"max_storage_moves", h.max_storage_moves},
                {"authentication", config::ToString(h.authentication)},
                {"performance", config::ToString(h.performance)}}}};
}

base::Result<json> VmService::List() {
  std::vector<std::shared_ptr<Vm>> vms;
  {
    std::lock_guard lock(map_mu_);
    for (auto& [name, vm] : vms_) vms.push_back(vm);
  }
  json list = json::array();
  for (auto& vm : vms) {
    std::lock_guard lock(vm->mu);
    if (!vm->deleted) list.push_back(Describe(*vm));
  }
  return json{{"vms", list}};
}

base::Result<json> VmService::Show(const std::string& name) {
  ASSIGN_OR_RETURN(std::shared_ptr<Vm> vm, Find(name));
  json j;
  std::string socket;
  config::VmDefinition definition;
  {
    std::lock_guard lock(vm->mu);
    j = Describe(*vm);
    if (HasWorker(vm->runtime.state)) socket = vm->runtime.control_socket;
    definition = vm->definition;
  }
  if (!socket.empty()) {
    // Live numbers are a bonus: a worker busy saving may not answer in time,
    // and show must still answer.
    auto reply = CallWorker(socket, WorkerRequest{WorkerOp::kStatus, ""}, 2000);
    if (reply) {
      j["stats"] = StatsToJson(reply->stats, definition);
      j["worker"]["vm_state"] = reply->state;
      // A disk failure does not stop the VM (the guest handles its I/O
      // error), so it is what the admin must see while it runs.
      if (j["last_error"] == "") j["last_error"] = FirstDiskError(reply->stats, definition);
    }
  }
  return j;
}

base::Result<std::string> VmService::ResolveProgram(const CreateRequest& request) const {
  if (!request.guest.empty()) {
    std::string path = options_.guest_dir + "/" + request.guest + "-guest.bin";
    if (FileExists(path)) return path;
    std::string available;
    for (const auto& g : GuestNames(options_.guest_dir)) available += (available.empty() ? "" : ", ") + g;
    return base::Error(base::Code::kNotFound,
                       "guest \"" + request.guest + "\" not found: no " + path +
                           (available.empty() ? " (no guests installed in " + options_.guest_dir + ")"
                                              : " (available: " + available + ")"));
  }
  const std::string& program = request.definition.program;
  if (program[0] != '/')
    return base::Error(base::Code::kInvalidArgument,
                       "guest program path must be absolute, not \"" + program + "\"");
  struct stat st{};
  if (::stat(program.c_str(), &st) != 0) return base::ErrnoError("guest program " + program);
  if (!S_ISREG(st.st_mode))
    return base::Error(base::Code::kInvalidArgument, "guest program " + program + " is not a regular file");
  return program;
}

base::Result<json> VmService::Create(CreateRequest request) {
  config::VmDefinition& def = request.definition;
  ASSIGN_OR_RETURN(def.program, ResolveProgram(request));
  for (const config::DiskSpec& disk : def.disks) {
    if (disk.path.empty() || disk.path[0] != '/')
      return base::Error(base::Code::kInvalidArgument, "disk path must be absolute, not \"" + disk.path + "\"");
    struct stat st{};
    if (::stat(disk.path.c_str(), &st) != 0) return base::ErrnoError("disk " + disk.path);
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
      return base::Error(base::Code::kInvalidArgument, "disk " + disk.path + " is not a file or block device");
    // The image and its whole chain, as start would open them (and the
    // tables start would only read later): a damaged image is refused now.
    storage::ImageCheckOptions check;
    check.writable = !disk.read_only;
    if (auto checked = storage::CheckDiskImage(disk.path, disk.format, check); !checked)
      return checked.error().Wrap("cannot create vm " + def.name + ": disk " +
                                  std::to_string(&disk - def.disks.data()) + " (" + base::Escaped(disk.path) + ")");
  }
  def.id = config::NewUuid();
  def.config_version = config::kVmConfigVersion;
  RETURN_IF_ERROR(config::ValidateVmDefinition(def, "vm " + def.name));

  auto vm = std::make_shared<Vm>();
  vm->name = def.name;
  vm->definition = def;
  // map_mu_ is held across the create so two requests for one name cannot
  // both succeed; vm is not visible to anyone else until it is in the map.
  std::lock_guard map_lock(map_mu_);
  if (vms_.count(def.name) != 0 || inventory_.Exists(def.name))
    return base::Error(base::Code::kAlreadyExists, "vm " + def.name + " already exists");
  if (incoming_names_.count(def.name) != 0)
    return base::Error(base::Code::kAlreadyExists, "vm " + def.name + " is arriving here by a live move");
  RETURN_IF_ERROR(inventory_.Create(def));
  ASSIGN_OR_RETURN(vm->runtime, inventory_.LoadRuntime(def.name));
  json described = Describe(*vm);
  vms_[def.name] = std::move(vm);
  base::LogInfo("vm " + def.name + " created (" + def.id + ")");
  return described;
}

base::Status VmService::Delete(const std::string& name) {
  ASSIGN_OR_RETURN(std::shared_ptr<Vm> vm, Find(name));
  std::lock_guard op(vm->op_mu);
  {
    std::lock_guard lock(vm->mu);
    if (vm->deleted) return base::Error(base::Code::kNotFound, "no vm named " + name);
    RETURN_IF_ERROR(CheckAction(name, vm->runtime.state, VmAction::kDelete));
  }
  RETURN_IF_ERROR(SettleDeparture(*vm, "delete"));
  {
    std::lock_guard lock(vm->mu);
    if (vm->deleted) return base::Error(base::Code::kNotFound, "no vm named " + name);
    if (vm->storage_move)
      return base::Error(base::Code::kFailedPrecondition,
                         "cannot delete vm " + name + ": its storage is being moved (see ferry jobs)");
    RETURN_IF_ERROR(inventory_.Delete(name));
    vm->deleted = true;
  }
  std::lock_guard map_lock(map_mu_);
  vms_.erase(name);
  base::LogInfo("vm " + name + " deleted");
  return base::Ok();
}

base::Result<std::string> VmService::ConsolePath(const std::string& name) {
  ASSIGN_OR_RETURN(std::shared_ptr<Vm> vm, Find(name));
  return inventory_.ConsolePath(name);
}

}  // namespace appliance
