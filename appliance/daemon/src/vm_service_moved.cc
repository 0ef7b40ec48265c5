// VmService's part in the source side of live moves: marking a VM as moving,
// and removing a VM whose worker handed it to another host ("moved").
// The move itself is LiveMoveService's (ferryd) and LiveMoveSource's (worker).
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <set>
#include <thread>

#include "common/process.h"
#include "plan/storage_move_plan.h"
#include "daemon/vm_service.h"
#include "daemon/worker_launcher.h"
#include "base/log.h"

namespace appliance {

namespace {

// How many finished departures MovedAway remembers (a job asks within
// seconds; the rest is history nobody reads).
constexpr size_t kMovedKept = 64;

}  // namespace

base::Result<VmService::MoveTarget> VmService::BeginLiveMove(const std::string& name, DepartureRecord departure) {
  ASSIGN_OR_RETURN(std::shared_ptr<Vm> vm, Find(name));
  // op_mu: no start/stop/save is half-way while the move begins.
  std::lock_guard op(vm->op_mu);
  RETURN_IF_ERROR(SettleDeparture(*vm, "move"));
  std::lock_guard lock(vm->mu);
  if (vm->deleted) return base::Error(base::Code::kNotFound, "no vm named " + name);
  if (vm->storage_move)
    return base::Error(base::Code::kFailedPrecondition,
                       "vm " + name + " is already moving (see ferry jobs); one move at a time");
  if (!HasWorker(vm->runtime.state))
    return base::Error(base::Code::kFailedPrecondition,
                       "cannot move vm " + name + " live: it is " + std::string(ToString(vm->runtime.state)) +
                           "; only a running or paused vm moves with ferry move-vm");
  MoveTarget target = TargetOf(*vm);
  // Durable before the worker hears of the move: a ferryd that restarts
  // after a switchover always knows the VM may be elsewhere.
  departure.state = DepartureState::kMoving;
  departure.changed_unix_ms = departure.started_unix_ms;
  departure.resume_here = vm->runtime.state == VmState::kRunning;
  RETURN_IF_ERROR(WriteDeparture(target.vm_dir, departure));
  vm->departure = departure;
  vm->storage_move = true;
  std::lock_guard moved_lock(moved_mu_);
  moved_.erase(name);  // an earlier VM of this name that left: not this move's outcome
  return target;
}

VmService::MovedVm VmService::FinishMovedVm(const std::string& name, const std::string& report) {
  MovedVm moved;
  moved.name = name;
  moved.report = report;
  std::shared_ptr<Vm> vm;
  {
    std::lock_guard lock(map_mu_);
    auto it = vms_.find(name);
    if (it != vms_.end()) vm = it->second;
  }
  if (vm == nullptr) return MovedAway(name).value_or(moved);  // finished, or half-way: wait
  bool finishing_elsewhere = false;
  {
    // One caller does the work; another (the supervisor and a job may both
    // get here) waits for its result. BeginLiveMove cleared moved_[name],
    // so an entry there is this departure's.
    std::lock_guard moved_lock(moved_mu_);
    finishing_elsewhere = departing_.count(name) != 0 || moved_.count(name) != 0;
    if (!finishing_elsewhere) departing_.insert(name);  // before the VM leaves the map
  }
  if (finishing_elsewhere) return MovedAway(name).value_or(moved);
  const std::string vm_dir = inventory_.VmDir(name);
  std::vector<config::VmDefinition> defs;
  {
    std::lock_guard lock(vm->mu);
    vm->deleted = true;  // no request acts on it any more; Persist writes nothing
    vm->storage_move = false;
    defs.push_back(vm->definition);
  }
  // vm.toml too: the worker may have changed the definition a moment ago.
  if (auto on_disk = inventory_.LoadDefinition(name); on_disk) defs.push_back(std::move(*on_disk));
  {
    std::lock_guard lock(map_mu_);
    if (vms_.count(name) != 0 && vms_[name] == vm) vms_.erase(name);
  }
  // Every disk and chain file, each once; one DiskMove per file so that
  // RemoveMoveSources (the storage moves' rule: keep what another VM uses,
  // matched by path or inode) decides for each.
  std::set<std::string> files;
  for (const auto& def : defs) {
    for (std::string& f : FilesOfVm(def, vm_dir)) files.insert(std::move(f));
  }
  StorageMovePlan sources;
  sources.vm_name = name;
  for (const std::string& f : files) {
    DiskMove d;
    d.top.source = f;
    sources.disks.push_back(std::move(d));
  }
  auto kept = RemoveMoveSources(sources, FilesUsedByOtherVms(name));
  // Tests stop ferryd half-way through this clean-up (the sources gone, the
  // VM's directory not yet): a restarted ferryd must finish it.
  if (const char* delay = std::getenv("FERRY_TEST_DEPARTURE_CLEANUP_DELAY_MS"); delay != nullptr && *delay != '\0') {
    base::LogInfo("vm " + name + " moved away: waiting FERRY_TEST_DEPARTURE_CLEANUP_DELAY_MS");
    std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(delay)));
  }
  std::set<std::string> kept_paths;
  if (kept) {
    moved.kept = std::move(*kept);
    for (const KeptSource& k : moved.kept) {
      kept_paths.insert(k.path);
      base::LogInfo("vm " + name + " moved away: kept " + k.path + " (used by vm " + k.used_by + ")");
    }
  } else {
    base::LogError("vm " + name + " moved away: " + kept.error().ToString());
  }
  for (const std::string& f : files) {
    struct stat st{};
    if (kept_paths.count(f) == 0 && ::stat(f.c_str(), &st) != 0) moved.removed.push_back(f);
  }
  if (auto st = inventory_.Delete(name); !st)
    base::LogWarning("vm " + name + " moved away: " + st.error().ToString());
  if (::rmdir(vm_dir.c_str()) != 0 && errno != ENOENT)
    base::LogWarning("vm " + name + " moved away: " + vm_dir + " keeps files ferry did not create");
  base::LogInfo("vm " + name + " moved to another host: removed from the inventory, " +
                std::to_string(moved.removed.size()) + " files deleted, " + std::to_string(moved.kept.size()) +
                " kept");
  std::lock_guard lock(moved_mu_);
  if (moved_.size() >= kMovedKept) moved_.erase(moved_.begin());
  moved_[name] = moved;
  departing_.erase(name);
  moved_cv_.notify_all();
  return moved;
}

std::optional<VmService::MovedVm> VmService::MovedAway(const std::string& name) {
  std::unique_lock lock(moved_mu_);
  moved_cv_.wait(lock, [&] { return departing_.count(name) == 0; });
  auto it = moved_.find(name);
  if (it == moved_.end()) return std::nullopt;
  return it->second;
}

base::Status VmService::KillWorkerOfMovedVm(const std::string& name, int timeout_ms) {
  ASSIGN_OR_RETURN(std::shared_ptr<Vm> vm, Find(name));
  int64_t pid = 0;
  {
    std::lock_guard lock(vm->mu);
    if (!HasWorker(vm->runtime.state) || vm->exited) return base::Ok();
    pid = vm->runtime.worker_pid;
  }
  auto pidfd = PidfdOpen(pid);
  if (!pidfd) return base::Ok();  // already gone
  base::LogWarning("vm " + name + ": the destination committed but worker pid " + std::to_string(pid) +
                   " did not exit; killing it");
  RETURN_IF_ERROR(PidfdSignal(pidfd->get(), SIGKILL));
  ASSIGN_OR_RETURN(bool exited, PidfdWaitExit(pidfd->get(), timeout_ms));
  if (!exited)
    return base::Error(base::Code::kDeadlineExceeded,
                       "worker pid " + std::to_string(pid) + " of vm " + name + " did not die after SIGKILL");
  return base::Ok();
}

void VmService::FinishMovesAtStart() {
  std::vector<std::shared_ptr<Vm>> moved;
  {
    std::lock_guard lock(map_mu_);
    for (auto& [name, vm] : vms_) moved.push_back(vm);
  }
  for (const auto& vm : moved) {
    int64_t pid = 0;
    {
      std::lock_guard lock(vm->mu);
      if (!vm->deleted) continue;  // Recover marks a VM whose worker exited "moved"
      pid = vm->runtime.worker_pid;
    }
    auto record = ReadExitRecord(inventory_.WorkerExitPath(vm->name), pid);
    base::LogInfo("vm " + vm->name + ": its worker moved it to another host while ferryd was down");
    FinishMovedVm(vm->name, record ? record->live_move : "");
  }
}

}  // namespace appliance
