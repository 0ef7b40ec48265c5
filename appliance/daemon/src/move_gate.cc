// MoveGate: beginning and ending the moves of a VM, both kinds (move_gate.h).
// The clean-up of a VM that left is in moved_vm.cc.
#include "daemon/move_gate.h"

#include "base/fd.h"
#include "base/log.h"
#include "daemon/vm_control.h"
#include "daemon/vm_departures.h"
#include "plan/storage_move_plan.h"

namespace appliance {

base::Status MoveGate::RefuseWhileMoving(const VmEntry& vm, const std::string& verb) {
  if (!vm.moving) return base::Ok();
  return base::Error(
      base::Code::kFailedPrecondition,
      "cannot " + verb + " vm " + vm.name + ": its storage is being moved (see ferry jobs)");
}

base::Result<MoveTarget> MoveGate::Enter(const std::string& name, const std::string& what,
                                         const std::string& already_moving,
                                         const BeginStep& begin) {
  ASSIGN_OR_RETURN(std::shared_ptr<VmEntry> vm, core_.Find(name));
  // op_mu: no start/stop/save is half-way while the move begins.
  base::MutexLock op(vm->op_mu);
  RETURN_IF_ERROR(departures_.Settle(*vm, what));
  base::MutexLock lock(vm->mu);
  if (vm->deleted) return base::Error(base::Code::kNotFound, "no vm named " + name);
  if (vm->moving) return base::Error(base::Code::kFailedPrecondition, already_moving);
  MoveTarget target = core_.TargetOf(*vm);
  RETURN_IF_ERROR(begin(*vm, target));
  vm->moving = true;
  return target;
}

base::Result<MoveTarget> MoveGate::BeginStorageMove(const std::string& name) {
  return Enter(name, "move the storage of",
               "vm " + name + " is already moving its storage (see ferry jobs)",
               [&](VmEntry& vm, const MoveTarget&) -> base::Status {
                 vm.mu.AssertHeld();  // Enter runs the step under vm.mu
                 if (vm.runtime.state == VmState::kSaved)
                   return base::Error(
                       base::Code::kFailedPrecondition,
                       "cannot move the storage of vm " + name +
                           ": it is saved (its state file refers to its disks); restore or stop it "
                           "first");
                 return base::Ok();
               });
}

base::Result<MoveTarget> MoveGate::BeginLiveMove(const std::string& name,
                                                 DepartureRecord departure) {
  return Enter(
      name, "move", "vm " + name + " is already moving (see ferry jobs); one move at a time",
      [&](VmEntry& vm, const MoveTarget& target) -> base::Status {
        vm.mu.AssertHeld();  // Enter runs the step under vm.mu
        if (!HasWorker(vm.runtime.state))
          return base::Error(base::Code::kFailedPrecondition,
                             "cannot move vm " + name + " live: it is " +
                                 std::string(ToString(vm.runtime.state)) +
                                 "; only a running or paused vm moves with ferry move-vm");
        // Durable before the worker hears of the move: a ferryd that
        // restarts after a switchover always knows the VM may be elsewhere.
        departure.state = DepartureState::kMoving;
        departure.changed_unix_ms = departure.started_unix_ms;
        departure.resume_here = vm.runtime.state == VmState::kRunning;
        RETURN_IF_ERROR(WriteDeparture(target.vm_dir, departure));
        vm.departure = departure;
        base::MutexLock moved_lock(moved_mu_);
        moved_.erase(name);  // an earlier VM of this name that left: not this move's outcome
        return base::Ok();
      });
}

void MoveGate::EndStorageMove(const std::string& name, bool reload) {
  auto vm = core_.Find(name);
  if (!vm) return;
  base::MutexLock lock((*vm)->mu);
  (*vm)->moving = false;
  if (!reload) return;
  auto def = core_.inventory().LoadDefinition(name);
  if (!def) {
    base::LogError("vm " + name +
                   ": reload definition after storage move: " + def.error().ToString());
    return;
  }
  (*vm)->definition = std::move(*def);
}

void MoveGate::EndLiveMove(const std::string& name, const std::string& migration_id) {
  auto vm = core_.Find(name);
  if (!vm) return;
  {
    base::MutexLock lock((*vm)->mu);
    if ((*vm)->deleted || !(*vm)->departure || (*vm)->departure->migration_id != migration_id)
      return;
    (*vm)->moving = false;
    (*vm)->departure.reset();
    if (auto st = RemoveDeparture(core_.inventory().VmDir(name)); !st)
      base::LogError("vm " + name + ": " + st.error().ToString());
  }
  // The move may have paused it for a switchover it then undid.
  control_.RefreshStateFromWorker(**vm);
}

base::Result<VmState> MoveGate::CurrentState(const std::string& name) {
  ASSIGN_OR_RETURN(std::shared_ptr<VmEntry> vm, core_.Find(name));
  base::MutexLock lock(vm->mu);
  return vm->runtime.state;
}

base::Status MoveGate::CommitMovedDefinition(const std::string& name,
                                             const config::VmDefinition& definition) {
  ASSIGN_OR_RETURN(std::shared_ptr<VmEntry> vm, core_.Find(name));
  base::MutexLock lock(vm->mu);
  if (HasWorker(vm->runtime.state))
    return base::Error(base::Code::kFailedPrecondition,
                       "vm " + name + " started during an offline storage move");
  if (auto st = base::WriteFileAtomically(core_.inventory().DefinitionPath(name),
                                          config::FormatVmDefinition(definition));
      !st)
    return st.error().Wrap("record the moved definition of vm " + name);
  vm->definition = definition;
  return base::Ok();
}

bool MoveGate::StorageMoveActive(const std::string& name) {
  auto vm = core_.Find(name);
  if (!vm) return false;
  base::MutexLock lock((*vm)->mu);
  return (*vm)->moving;
}

std::map<std::string, std::string> MoveGate::FilesUsedByOtherVms(const std::string& name) {
  std::map<std::string, std::string> used;
  for (const auto& vm : core_.All(/*except=*/name)) {
    std::vector<config::VmDefinition> defs;
    {
      base::MutexLock lock(vm->mu);
      if (vm->deleted) continue;
      defs.push_back(vm->definition);
    }
    if (auto on_disk = core_.inventory().LoadDefinition(vm->name); on_disk)
      defs.push_back(std::move(*on_disk));
    for (const auto& def : defs) {
      for (std::string& f : FilesOfVm(def, core_.inventory().VmDir(vm->name)))
        used.emplace(std::move(f), vm->name);
    }
  }
  return used;
}

}  // namespace appliance
