// MoveGate's end of a live move that committed: the VM runs on another host
// now, so it leaves the inventory and its files go (move_gate.h). The move
// itself is LiveMoveService's (ferryd) and LiveMoveSource's (worker).
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <set>
#include <thread>

#include "base/log.h"
#include "common/process.h"
#include "daemon/move_gate.h"
#include "plan/storage_move_plan.h"

namespace appliance {

namespace {

// How many finished departures MovedAway remembers (a job asks within
// seconds; the rest is history nobody reads).
constexpr size_t kMovedKept = 64;

// Tests stop ferryd half-way through the clean-up (the sources gone, the
// VM's directory not yet): a restarted ferryd must finish it.
void TestDelay(const std::string& name) {
  const char* delay = std::getenv("FERRY_TEST_DEPARTURE_CLEANUP_DELAY_MS");
  if (delay == nullptr || *delay == '\0') return;
  base::LogInfo("vm " + name + " moved away: waiting FERRY_TEST_DEPARTURE_CLEANUP_DELAY_MS");
  std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(delay)));
}

}  // namespace

MovedVm MoveGate::FinishMovedVm(const std::string& name, const std::string& report) {
  MovedVm moved;
  moved.name = name;
  moved.report = report;
  std::shared_ptr<VmEntry> vm =
      core_.WithNames([&](VmRegistry::Names& names) -> std::shared_ptr<VmEntry> {
        auto it = names.vms.find(name);
        return it == names.vms.end() ? nullptr : it->second;
      });
  if (vm == nullptr) return MovedAway(name).value_or(moved);  // finished, or half-way: wait
  if (!ClaimDeparture(name)) return MovedAway(name).value_or(moved);
  RemoveFiles(name, TakeOut(vm), moved);
  Publish(moved);
  return moved;
}

bool MoveGate::ClaimDeparture(const std::string& name) {
  // One caller does the work; another (the supervisor and a job may both
  // get here) waits for its result. BeginLiveMove cleared moved_[name], so
  // an entry there is this departure's.
  base::MutexLock moved_lock(moved_mu_);
  if (departing_.count(name) != 0 || moved_.count(name) != 0) return false;
  departing_.insert(name);  // before the VM leaves the map
  return true;
}

std::vector<config::VmDefinition> MoveGate::TakeOut(const std::shared_ptr<VmEntry>& vm) {
  std::vector<config::VmDefinition> defs;
  {
    base::MutexLock lock(vm->mu);
    vm->deleted = true;  // no request acts on it any more; Persist writes nothing
    vm->moving = false;
    defs.push_back(vm->definition);
  }
  // vm.toml too: the worker may have changed the definition a moment ago.
  if (auto on_disk = core_.inventory().LoadDefinition(vm->name); on_disk)
    defs.push_back(std::move(*on_disk));
  core_.WithNames([&](VmRegistry::Names& names) {
    auto it = names.vms.find(vm->name);
    if (it != names.vms.end() && it->second == vm) names.vms.erase(it);
  });
  return defs;
}

void MoveGate::RemoveFiles(const std::string& name, const std::vector<config::VmDefinition>& defs,
                           MovedVm& moved) {
  const std::string vm_dir = core_.inventory().VmDir(name);
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
  TestDelay(name);
  std::set<std::string> kept_paths;
  if (kept) {
    moved.kept = std::move(*kept);
    for (const KeptSource& k : moved.kept) {
      kept_paths.insert(k.path);
      base::LogInfo("vm " + name + " moved away: kept " + k.path + " (used by vm " + k.used_by +
                    ")");
    }
  } else {
    base::LogError("vm " + name + " moved away: " + kept.error().ToString());
  }
  for (const std::string& f : files) {
    struct stat st {};
    if (kept_paths.count(f) == 0 && ::stat(f.c_str(), &st) != 0) moved.removed.push_back(f);
  }
  if (auto st = core_.inventory().Delete(name); !st)
    base::LogWarning("vm " + name + " moved away: " + st.error().ToString());
  if (::rmdir(vm_dir.c_str()) != 0 && errno != ENOENT)
    base::LogWarning("vm " + name + " moved away: " + vm_dir + " keeps files ferry did not create");
}

void MoveGate::Publish(const MovedVm& moved) {
  base::LogInfo("vm " + moved.name + " moved to another host: removed from the inventory, " +
                std::to_string(moved.removed.size()) + " files deleted, " +
                std::to_string(moved.kept.size()) + " kept");
  base::MutexLock lock(moved_mu_);
  if (moved_.size() >= kMovedKept) moved_.erase(moved_.begin());
  moved_[moved.name] = moved;
  departing_.erase(moved.name);
  moved_cv_.NotifyAll();
}

std::optional<MovedVm> MoveGate::MovedAway(const std::string& name) {
  base::MutexLock lock(moved_mu_);
  while (departing_.count(name) != 0) moved_cv_.Wait(moved_mu_);
  auto it = moved_.find(name);
  if (it == moved_.end()) return std::nullopt;
  return it->second;
}

base::Status MoveGate::KillWorkerOfMovedVm(const std::string& name, int timeout_ms) {
  ASSIGN_OR_RETURN(std::shared_ptr<VmEntry> vm, core_.Find(name));
  int64_t pid = 0;
  {
    base::MutexLock lock(vm->mu);
    if (!HasWorker(vm->runtime.state) || vm->exited) return base::Ok();
    pid = vm->runtime.worker_pid;
  }
  auto pidfd = PidfdOpen(pid);
  if (!pidfd) return base::Ok();  // already gone
  base::LogWarning("vm " + name + ": the destination committed but worker pid " +
                   std::to_string(pid) + " did not exit; killing it");
  RETURN_IF_ERROR(PidfdSignal(pidfd->get(), SIGKILL));
  ASSIGN_OR_RETURN(bool exited, PidfdWaitExit(pidfd->get(), timeout_ms));
  if (!exited)
    return base::Error(
        base::Code::kDeadlineExceeded,
        "worker pid " + std::to_string(pid) + " of vm " + name + " did not die after SIGKILL");
  return base::Ok();
}

}  // namespace appliance
