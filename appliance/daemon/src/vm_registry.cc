#include "daemon/vm_registry.h"

#include "base/fd.h"
#include "base/log.h"
#include "config/names.h"

namespace appliance {

VmRegistry::VmRegistry(ServiceOptions options, Inventory inventory, base::Fd lock)
    : options_(std::move(options)), inventory_(std::move(inventory)), lock_(std::move(lock)) {}

base::Result<std::shared_ptr<VmEntry>> VmRegistry::Find(const std::string& name) {
  RETURN_IF_ERROR(config::ValidateVmName(name));
  base::MutexLock lock(map_mu_);
  auto it = names_.vms.find(name);
  if (it == names_.vms.end()) return base::Error(base::Code::kNotFound, "no vm named " + name);
  return it->second;
}

std::vector<std::shared_ptr<VmEntry>> VmRegistry::All(const std::string& except) {
  std::vector<std::shared_ptr<VmEntry>> vms;
  base::MutexLock lock(map_mu_);
  for (auto& [name, vm] : names_.vms) {
    if (name != except) vms.push_back(vm);
  }
  return vms;
}

base::Status VmRegistry::Persist(VmEntry& vm, const RuntimeRecord& runtime) {
  vm.runtime = runtime;
  if (vm.deleted) return base::Ok();
  auto st = inventory_.SaveRuntime(vm.name, runtime);
  if (!st) return st.error().Wrap("record state of vm " + vm.name);
  return base::Ok();
}

base::Status VmRegistry::RecordDefinition(VmEntry& vm, const config::VmDefinition& definition) {
  if (auto st = base::WriteFileAtomically(inventory_.DefinitionPath(vm.name),
                                          config::FormatVmDefinition(definition));
      !st)
    return st.error().Wrap("record the definition of vm " + vm.name);
  base::MutexLock lock(vm.mu);
  vm.definition = definition;
  return base::Ok();
}

MoveTarget VmRegistry::TargetOf(const VmEntry& vm) const {
  MoveTarget target;
  target.state = vm.runtime.state;
  target.definition = vm.definition;
  target.vm_dir = inventory_.VmDir(vm.name);
  if (HasWorker(vm.runtime.state)) target.control_socket = vm.runtime.control_socket;
  return target;
}

VmView VmRegistry::View(const VmEntry& vm) const {
  VmView view;
  view.name = vm.name;
  view.definition = vm.definition;
  view.runtime = vm.runtime;
  view.dir = inventory_.VmDir(vm.name);
  view.console = inventory_.ConsolePath(vm.name);
  view.departure = vm.departure;
  view.departure_watched = vm.moving;
  return view;
}

}  // namespace appliance
