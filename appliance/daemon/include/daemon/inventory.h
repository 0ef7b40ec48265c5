// The VM inventory on disk: <storage_root>/vms/<name>/ holds
//   vm.toml        the definition (config::FormatVmDefinition), written atomically
//   runtime.json   what the VM is doing (RuntimeRecord), written atomically
//   console.log    the guest's serial output, appended by the worker
//   worker.log     the worker's stdout/stderr
//   worker.error   why the worker last failed (plain text)
//   worker.exit    the worker's exit record (WorkerExitRecord)
//   saved.fvs      the saved state while the VM is saved
//   control.sock   the running worker's control socket
//   departure.json a live move of the VM is under way or in doubt (departure_record.h)
// A directory without vm.toml is not a VM (a half-created or half-deleted one).
//
// Thread-safety: Inventory is immutable after Open; its methods touch only
// the files of the VM they name, so callers serialize per VM.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "config/vm_definition.h"
#include "daemon/runtime_record.h"
#include "ipc/vm_dir_files.h"

namespace appliance {

class Inventory {
 public:
  // Creates <storage_root>/vms (mode 0700) if missing.
  static base::Result<Inventory> Open(const std::string& storage_root);

  const std::string& root() const { return vms_dir_; }
  std::string VmDir(const std::string& name) const { return vms_dir_ + "/" + name; }
  std::string DefinitionPath(const std::string& name) const { return VmDir(name) + "/vm.toml"; }
  std::string RuntimePath(const std::string& name) const { return VmDir(name) + "/runtime.json"; }
  std::string ConsolePath(const std::string& name) const { return VmDir(name) + "/console.log"; }
  std::string WorkerLogPath(const std::string& name) const { return VmDir(name) + "/worker.log"; }
  std::string WorkerErrorPath(const std::string& name) const {
    return VmDir(name) + "/worker.error";
  }
  std::string WorkerExitPath(const std::string& name) const {
    return VmDir(name) + "/" + kWorkerExitFile;
  }
  std::string SavedStatePath(const std::string& name) const { return VmDir(name) + "/saved.fvs"; }
  std::string ControlSocketPath(const std::string& name) const {
    return VmDir(name) + "/control.sock";
  }

  // Names of the VMs (directories with a vm.toml), sorted; with leftovers,
  // the directories without one instead (a delete or a departure that was
  // interrupted after vm.toml went: Delete finishes them).
  base::Result<std::vector<std::string>> ListNames(bool leftovers = false) const;
  bool Exists(const std::string& name) const;

  // Creates the VM directory with its definition, an empty console.log and a
  // stopped runtime record. kAlreadyExists if the VM exists.
  base::Status Create(const config::VmDefinition& definition);
  base::Result<config::VmDefinition> LoadDefinition(const std::string& name) const;
  // A VM without runtime.json (created by hand, or by an older ferryd) is stopped.
  base::Result<RuntimeRecord> LoadRuntime(const std::string& name) const;
  base::Status SaveRuntime(const std::string& name, const RuntimeRecord& record) const;
  // Removes the files listed above and the directory if nothing else is left
  // in it. Files ferry did not create (say, a disk image kept in the VM
  // directory) are never removed.
  base::Status Delete(const std::string& name) const;

 private:
  explicit Inventory(std::string vms_dir) : vms_dir_(std::move(vms_dir)) {}
  std::string vms_dir_;
};

}  // namespace appliance
