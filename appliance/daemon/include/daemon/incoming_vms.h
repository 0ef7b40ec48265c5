// IncomingVms: the destination side of live moves as VmService sees it —
// keeping a VM's name free while it arrives, and adopting the VM once its
// move committed (PeerService decides when; docs/live_move.md).
//
// Threads: any. The names live in the registry's map, under its map_mu
// (vm_registry.h): a create and an arrival of one name cannot both win.
#pragma once

#include <cstdint>
#include <string>

#include "base/result.h"
#include "daemon/vm_registry.h"

namespace appliance {

class IncomingVms {
 public:
  // core must outlive this.
  explicit IncomingVms(VmRegistry& core) : core_(core) {}

  // Whether the inventory holds a VM of that name (a Prepare is refused then).
  bool HasVm(const std::string& name);
  // Why an incoming move of a VM of this name cannot be taken, or "": a VM
  // of that name exists, another move reserved it, or a directory of that
  // name without a vm.toml is in the inventory (the adoption's rename could
  // not replace it).
  std::string NameConflict(const std::string& name);
  // An incoming move holds the name from Prepare until it is adopted or
  // cleaned up: Create refuses it meanwhile, so the committed VM can always
  // be adopted. Reserve fails with kAlreadyExists naming the conflict.
  base::Status ReserveName(const std::string& name);
  void ReleaseName(const std::string& name);
  // Takes over a committed incoming VM: renames incoming_dir (holding the
  // moved vm.toml) to the VM's directory in the inventory and registers it as
  // running under worker_pid (control_socket: its path after the rename),
  // watched by the service's Supervisor like a re-attached worker (paused:
  // the VM arrived paused, as it was at the source). A worker_pid of 0 (the
  // worker died after committing) registers it crashed.
  // Its runtime.json is written before the rename, so a ferryd that stops
  // half-way finds the VM with its worker either still incoming or adopted.
  // Releases the name's reservation. kAlreadyExists if a VM of that name
  // exists (the directory stays put).
  base::Status Adopt(const std::string& name, const std::string& incoming_dir, int64_t worker_pid,
                     const std::string& control_socket, bool paused);

 private:
  // map_mu held (inside WithNames).
  std::string ConflictLocked(const VmRegistry::Names& names, const std::string& name);
  // Moves incoming_dir, with runtime.json written first, into the inventory.
  base::Status MoveIntoInventory(const std::string& name, const std::string& incoming_dir,
                                 const RuntimeRecord& runtime);

  VmRegistry& core_;
};

}  // namespace appliance
