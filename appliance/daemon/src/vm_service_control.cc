// VmService: create, delete and the control actions (start, restore, stop,
// pause, resume, save). Each action runs under the VM's op_mu; VmControl
// does the worker's part.
#include <sys/stat.h>

#include "base/escape.h"
#include "base/log.h"
#include "config/names.h"
#include "daemon/vm_service.h"
#include "guest_names.h"
#include "storage/image_check.h"

namespace appliance {

base::Result<VmView> VmService::Act(const std::string& name, VmAction action,
                                    const std::string& state_file) {
  ASSIGN_OR_RETURN(std::shared_ptr<VmEntry> vm, core_.Find(name));
  if (!state_file.empty() && state_file[0] != '/')
    return base::Error(base::Code::kInvalidArgument,
                       "state file path must be absolute, not \"" + state_file + "\"");
  base::MutexLock op(vm->op_mu);
  {
    base::MutexLock lock(vm->mu);
    if (vm->deleted) return base::Error(base::Code::kNotFound, "no vm named " + name);
    RETURN_IF_ERROR(CheckAction(name, vm->runtime.state, action));
    // A live move is aborted by the worker on stop or save; an offline move
    // copies files no worker may open meanwhile.
    if (action == VmAction::kStart || action == VmAction::kRestore)
      RETURN_IF_ERROR(MoveGate::RefuseWhileMoving(*vm, std::string(ToString(action))));
  }
  // Each of these could make a VM whose live move may have committed run
  // here too (a save, through a later restore). Stop and pause cannot.
  if (action == VmAction::kStart || action == VmAction::kRestore || action == VmAction::kResume ||
      action == VmAction::kSave)
    RETURN_IF_ERROR(departures_.Settle(*vm, std::string(ToString(action))));
  switch (action) {
    case VmAction::kStart:
    case VmAction::kRestore: RETURN_IF_ERROR(control_.Launch(*vm, action, state_file)); break;
    case VmAction::kStop: RETURN_IF_ERROR(control_.Stop(*vm)); break;
    case VmAction::kPause:
    case VmAction::kResume: RETURN_IF_ERROR(control_.PauseOrResume(*vm, action)); break;
    case VmAction::kSave: RETURN_IF_ERROR(control_.Save(*vm, state_file)); break;
    case VmAction::kDelete:
      return base::Error(base::Code::kInvalidArgument, "delete is not a vm action; use DELETE");
  }
  base::MutexLock lock(vm->mu);
  return core_.View(*vm);
}

base::Result<std::string> VmService::ResolveProgram(const CreateRequest& request) const {
  const ServiceOptions& options = core_.options();
  if (!request.guest.empty()) {
    std::string path = options.guest_dir + "/" + request.guest + "-guest.bin";
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) return path;
    std::string available;
    for (const auto& g : GuestNames(options.guest_dir))
      available += (available.empty() ? "" : ", ") + g;
    return base::Error(
        base::Code::kNotFound,
        "guest \"" + request.guest + "\" not found: no " + path +
            (available.empty() ? " (no guests installed in " + options.guest_dir + ")"
                               : " (available: " + available + ")"));
  }
  const std::string& program = request.definition.program;
  if (program[0] != '/')
    return base::Error(base::Code::kInvalidArgument,
                       "guest program path must be absolute, not \"" + program + "\"");
  struct stat st {};
  if (::stat(program.c_str(), &st) != 0) return base::ErrnoError("guest program " + program);
  if (!S_ISREG(st.st_mode))
    return base::Error(base::Code::kInvalidArgument,
                       "guest program " + program + " is not a regular file");
  return program;
}

base::Status VmService::CheckDisks(const config::VmDefinition& def) const {
  for (const config::DiskSpec& disk : def.disks) {
    if (disk.path.empty() || disk.path[0] != '/')
      return base::Error(base::Code::kInvalidArgument,
                         "disk path must be absolute, not \"" + disk.path + "\"");
    struct stat st {};
    if (::stat(disk.path.c_str(), &st) != 0) return base::ErrnoError("disk " + disk.path);
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
      return base::Error(base::Code::kInvalidArgument,
                         "disk " + disk.path + " is not a file or block device");
    // The image and its whole chain, as start would open them (and the
    // tables start would only read later): a damaged image is refused now.
    storage::ImageCheckOptions check;
    check.writable = !disk.read_only;
    if (auto checked = storage::CheckDiskImage(disk.path, disk.format, check); !checked)
      return checked.error().Wrap("cannot create vm " + def.name + ": disk " +
                                  std::to_string(&disk - def.disks.data()) + " (" +
                                  base::Escaped(disk.path) + ")");
  }
  return base::Ok();
}

base::Result<VmView> VmService::Create(CreateRequest request) {
  config::VmDefinition& def = request.definition;
  ASSIGN_OR_RETURN(def.program, ResolveProgram(request));
  RETURN_IF_ERROR(CheckDisks(def));
  def.id = config::NewUuid();
  def.config_version = config::kVmConfigVersion;
  RETURN_IF_ERROR(config::ValidateVmDefinition(def, "vm " + def.name));

  // map_mu is held across the create so two requests for one name cannot
  // both succeed; vm is not visible to anyone else until it is in the map.
  return core_.WithNames([&](VmRegistry::Names& map) -> base::Result<VmView> {
    Inventory& inventory = core_.inventory();
    if (map.vms.count(def.name) != 0 || inventory.Exists(def.name))
      return base::Error(base::Code::kAlreadyExists, "vm " + def.name + " already exists");
    if (map.incoming.count(def.name) != 0)
      return base::Error(base::Code::kAlreadyExists,
                         "vm " + def.name + " is arriving here by a live move");
    RETURN_IF_ERROR(inventory.Create(def));
    ASSIGN_OR_RETURN(RuntimeRecord runtime, inventory.LoadRuntime(def.name));
    auto vm = std::make_shared<VmEntry>(def.name);
    base::MutexLock lock(vm->mu);  // not in the map yet: nobody else can hold it
    vm->definition = def;
    vm->runtime = std::move(runtime);
    VmView view = core_.View(*vm);
    map.vms[def.name] = vm;
    base::LogInfo("vm " + def.name + " created (" + def.id + ")");
    return view;
  });
}

base::Status VmService::Delete(const std::string& name) {
  ASSIGN_OR_RETURN(std::shared_ptr<VmEntry> vm, core_.Find(name));
  base::MutexLock op(vm->op_mu);
  {
    base::MutexLock lock(vm->mu);
    if (vm->deleted) return base::Error(base::Code::kNotFound, "no vm named " + name);
    RETURN_IF_ERROR(CheckAction(name, vm->runtime.state, VmAction::kDelete));
  }
  RETURN_IF_ERROR(departures_.Settle(*vm, "delete"));
  {
    base::MutexLock lock(vm->mu);
    if (vm->deleted) return base::Error(base::Code::kNotFound, "no vm named " + name);
    RETURN_IF_ERROR(MoveGate::RefuseWhileMoving(*vm, "delete"));
    RETURN_IF_ERROR(core_.inventory().Delete(name));
    vm->deleted = true;
  }
  core_.WithNames([&](VmRegistry::Names& map) { map.vms.erase(name); });
  base::LogInfo("vm " + name + " deleted");
  return base::Ok();
}

}  // namespace appliance
