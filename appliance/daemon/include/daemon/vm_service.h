// VmService: ferryd's VM inventory and the life-cycle of each VM's worker.
// The API handler calls it; it owns the Supervisor that watches workers.
//
// It is built of pieces, one per concern, over one shared core:
//   VmRegistry        (vm_registry.h)      the VMs, their locks and records,
//                                          the inventory, the supervisor
//   VmControl         (vm_control.h)       start/restore/stop/pause/resume/save
//   MoveGate          (move_gate.h)        storage moves and live moves, source side
//   VmDepartures      (vm_departures.h)    departure records and their resolution
//   IncomingVms       (incoming_vms.h)     live moves, destination side
//   CheckpointService (checkpoint_service.h)
// VmService itself answers the inventory's questions (host, list, show),
// creates and deletes VMs, runs the control actions, recovers the workers
// after a restart and hears their exits. Callers reach the other pieces
// through moves(), departures(), incoming() and checkpoints().
//
// Threads: the API's connection threads call the public methods
// concurrently; the supervisor thread calls OnWorkerExit; the move jobs call
// the pieces. vm_registry.h says which mutex guards what, and their order.
// Answers are plain values (vm_views.h); the API layer makes them JSON.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "daemon/checkpoint_service.h"
#include "daemon/incoming_vms.h"
#include "daemon/move_gate.h"
#include "daemon/vm_control.h"
#include "daemon/vm_departures.h"
#include "daemon/vm_json.h"  // CreateRequest
#include "daemon/vm_registry.h"
#include "daemon/vm_state.h"
#include "daemon/vm_views.h"

namespace appliance {

class VmService {
 public:
  // The answers' types, by their old names.
  using MoveTarget = appliance::MoveTarget;
  using MovedVm = appliance::MovedVm;
  using Departure = appliance::Departure;

  // Loads the inventory and re-attaches to the workers that survived a
  // previous ferryd; VMs whose worker is gone are marked crashed.
  // kFailedPrecondition if another VmService (ferryd) holds the inventory.
  static base::Result<std::unique_ptr<VmService>> Open(ServiceOptions options);
  // Workers keep running: a ferryd restart must not stop VMs.
  ~VmService();

  HostInfo Host();
  std::vector<VmView> List();
  // With the worker's live numbers when it answers in time.
  base::Result<VmView> Show(const std::string& name);
  base::Result<VmView> Create(CreateRequest request);
  base::Status Delete(const std::string& name);
  // state_file: for kSave where to write ("" = <vm dir>/saved.fvs), for
  // kRestore where to read ("" = the VM's saved state); ignored otherwise.
  base::Result<VmView> Act(const std::string& name, VmAction action, const std::string& state_file);
  base::Result<std::string> ConsolePath(const std::string& name);

  MoveGate& moves() { return moves_; }
  VmDepartures& departures() { return departures_; }
  IncomingVms& incoming() { return incoming_; }
  CheckpointService& checkpoints() { return checkpoints_; }

 private:
  VmService(ServiceOptions options, Inventory inventory, base::Fd lock);
  // Open's steps.
  void RemoveLeftovers();
  void LoadVms(const std::vector<std::string>& names);
  void Recover(VmEntry& vm);
  // Recover's step for a VM whose worker still runs: re-attach, or mark it crashed.
  void ReattachWorker(VmEntry& vm, base::Fd pidfd) REQUIRES(vm.mu);
  void FinishMovesAtStart();  // VMs whose worker exited "moved" meanwhile
  void OnWorkerExit(const std::string& name, int64_t pid, const ProcessExit& exit);
  base::Result<std::string> ResolveProgram(const CreateRequest& request) const;
  base::Status CheckDisks(const config::VmDefinition& def) const;

  // The core first: every piece borrows it. The pieces borrow each other by
  // reference (MoveGate and VmDepartures each other), never in their
  // constructors. The supervisor (in core_) is stopped in the destructor's
  // body, before any piece its callback reaches is destroyed.
  VmRegistry core_;
  VmControl control_;
  MoveGate moves_;
  VmDepartures departures_;
  IncomingVms incoming_;
  CheckpointService checkpoints_;
};

}  // namespace appliance
