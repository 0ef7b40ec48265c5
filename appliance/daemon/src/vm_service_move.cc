// VmService's part in storage moves: marking a VM as moving, and recording
// the definition a move changed. The move itself is StorageMoveService's
// (ferryd side) and StorageMover's (worker side).
#include "daemon/vm_service.h"
#include "plan/storage_move_plan.h"
#include "base/fd.h"
#include "base/log.h"

namespace appliance {

base::Result<VmService::MoveTarget> VmService::BeginStorageMove(const std::string& name) {
  ASSIGN_OR_RETURN(std::shared_ptr<Vm> vm, Find(name));
  // op_mu: no start/stop/save is half-way while the move begins.
  std::lock_guard op(vm->op_mu);
  RETURN_IF_ERROR(SettleDeparture(*vm, "move the storage of"));
  std::lock_guard lock(vm->mu);
  if (vm->deleted) return base::Error(base::Code::kNotFound, "no vm named " + name);
  if (vm->storage_move)
    return base::Error(base::Code::kFailedPrecondition,
                       "vm " + name + " is already moving its storage (see ferry jobs)");
  if (vm->runtime.state == VmState::kSaved)
    return base::Error(base::Code::kFailedPrecondition,
                       "cannot move the storage of vm " + name +
                           ": it is saved (its state file refers to its disks); restore or stop it first");
  MoveTarget target = TargetOf(*vm);
  vm->storage_move = true;
  return target;
}

VmService::MoveTarget VmService::TargetOf(const Vm& vm) const {
  MoveTarget target;
  target.state = vm.runtime.state;
  target.definition = vm.definition;
  target.vm_dir = inventory_.VmDir(vm.name);
  if (HasWorker(vm.runtime.state)) target.control_socket = vm.runtime.control_socket;
  return target;
}

void VmService::EndStorageMove(const std::string& name, bool reload) {
  auto vm = Find(name);
  if (!vm) return;
  std::lock_guard lock((*vm)->mu);
  (*vm)->storage_move = false;
  if (!reload) return;
  auto def = inventory_.LoadDefinition(name);
  if (!def) {
    base::LogError("vm " + name + ": reload definition after storage move: " + def.error().ToString());
    return;
  }
  (*vm)->definition = std::move(*def);
}

base::Result<VmState> VmService::CurrentState(const std::string& name) {
  ASSIGN_OR_RETURN(std::shared_ptr<Vm> vm, Find(name));
  std::lock_guard lock(vm->mu);
  return vm->runtime.state;
}

base::Status VmService::CommitMovedDefinition(const std::string& name, const config::VmDefinition& definition) {
  ASSIGN_OR_RETURN(std::shared_ptr<Vm> vm, Find(name));
  std::lock_guard lock(vm->mu);
  if (HasWorker(vm->runtime.state))
    return base::Error(base::Code::kFailedPrecondition, "vm " + name + " started during an offline storage move");
  if (auto st = base::WriteFileAtomically(inventory_.DefinitionPath(name), config::FormatVmDefinition(definition));
      !st)
    return st.error().Wrap("record the moved definition of vm " + name);
  vm->definition = definition;
  return base::Ok();
}

bool VmService::StorageMoveActive(const std::string& name) {
  auto vm = Find(name);
  if (!vm) return false;
  std::lock_guard lock((*vm)->mu);
  return (*vm)->storage_move;
}

std::map<std::string, std::string> VmService::FilesUsedByOtherVms(const std::string& name) {
  std::vector<std::shared_ptr<Vm>> others;
  {
    std::lock_guard lock(map_mu_);
    for (auto& [n, vm] : vms_) {
      if (n != name) others.push_back(vm);
    }
  }
  std::map<std::string, std::string> used;
  for (const auto& vm : others) {
    std::vector<config::VmDefinition> defs;
    {
      std::lock_guard lock(vm->mu);
      if (vm->deleted) continue;
      defs.push_back(vm->definition);
    }
    if (auto on_disk = inventory_.LoadDefinition(vm->name); on_disk) defs.push_back(std::move(*on_disk));
    for (const auto& def : defs) {
      for (std::string& f : FilesOfVm(def, inventory_.VmDir(vm->name))) used.emplace(std::move(f), vm->name);
    }
  }
  return used;
}

}  // namespace appliance
