// MoveGate: what VmService knows of the moves of its VMs, both kinds — a
// storage move (StorageMoveService) and the source side of a live move
// (LiveMoveService). A VM holds at most one move at a time; while it does,
// start, restore, delete and checkpoints are refused. Both kinds begin
// through one gate (Enter): the VM's op_mu, an earlier departure settled
// (VmDepartures::Settle), the VM still there and not moving, then the kind's
// own rule.
// A live move that committed ends here too: the VM left this host, and
// FinishMovedVm removes it and its files.
//
// Threads: any (API threads, job threads, the supervisor's). Locks per
// vm_registry.h; moved_mu_ comes after a VM's mu.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "base/result.h"
#include "daemon/departure_record.h"
#include "daemon/vm_registry.h"
#include "daemon/vm_views.h"

namespace appliance {

class VmControl;
class VmDepartures;

class MoveGate {
 public:
  // All three must outlive the gate; departures is only used after
  // construction (VmService builds the pieces side by side).
  MoveGate(VmRegistry& core, VmControl& control, VmDepartures& departures)
      : core_(core), control_(control), departures_(departures) {}

  // Storage moves (the jobs are StorageMoveService's).
  // Marks the VM as moving and returns what the move needs; a saved VM
  // cannot move (its state file refers to its disks).
  base::Result<MoveTarget> BeginStorageMove(const std::string& name);
  // reload: re-read vm.toml (the move committed new disk paths).
  void EndStorageMove(const std::string& name, bool reload);
  // For a VM without a worker: writes the moved definition (atomically).
  base::Status CommitMovedDefinition(const std::string& name,
                                     const config::VmDefinition& definition);
  // Whether a move holds the VM (other definition changes, such as
  // checkpoints, must wait).
  bool StorageMoveActive(const std::string& name);
  // The VM's state now (a move's poller asks after a worker call fails).
  base::Result<VmState> CurrentState(const std::string& name);
  // Every file the other VMs of the inventory use (FilesOfVm over both their
  // recorded definition and their vm.toml, which a worker may have changed
  // a moment ago), each with the name of a VM using it. A move's sources
  // listed here must stay.
  std::map<std::string, std::string> FilesUsedByOtherVms(const std::string& name);

  // Live moves, source side (LiveMoveService calls).
  // Marks a running or paused VM as moving and writes its departure record
  // (departure_record.h) durably before it returns, so no switchover can
  // happen unrecorded. A departure record from an earlier move is settled
  // first, and the move refused if it cannot be.
  base::Result<MoveTarget> BeginLiveMove(const std::string& name, DepartureRecord departure);
  // The move of `migration_id` failed and the VM stays here: the record
  // goes, the VM is free (another move's record, or a VM that left, is not
  // touched).
  void EndLiveMove(const std::string& name, const std::string& migration_id);
  // A worker that exits with exit record state "moved" handed its VM to
  // another host. FinishMovedVm drops the VM from the inventory and deletes
  // its files: every disk and chain file of its definition except those
  // another VM uses (kept), then the VM directory. Called on the worker's
  // exit, by Open for a worker that exited "moved" while ferryd was down,
  // and by a job whose worker died without a record once the destination
  // said it committed. report: the exit record's live_move.
  // A second caller while the first is still at work waits for it and gets
  // its result (the supervisor and a job may both get here).
  MovedVm FinishMovedVm(const std::string& name, const std::string& report);
  // What FinishMovedVm did for this VM, if it left this host (the last few);
  // waits while a FinishMovedVm for it is half-way, so a VM that is gone
  // from the inventory because it moved is always reported as moved.
  std::optional<MovedVm> MovedAway(const std::string& name);
  // The destination committed but the source worker does not exit: SIGKILL
  // it (through a pidfd, so a reused pid is never hit) and wait up to
  // timeout_ms for the exit. The VM runs at the destination; this copy is
  // paused and must never run again.
  base::Status KillWorkerOfMovedVm(const std::string& name, int timeout_ms);

  // For the other pieces (vm.mu held): refuses `verb` ("start", "delete")
  // while a move holds the VM.
  static base::Status RefuseWhileMoving(const VmEntry& vm, const std::string& verb) REQUIRES(vm.mu);

 private:
  // The common start of both kinds (see the top): `begin` runs under vm.mu
  // once the common checks passed, with the target it would return; the VM
  // is marked moving if it succeeds. `what` names the action for a refusal
  // by a departure, already_moving the refusal of a second move.
  using BeginStep = std::function<base::Status(VmEntry& vm, const MoveTarget& target)>;
  base::Result<MoveTarget> Enter(const std::string& name, const std::string& what,
                                 const std::string& already_moving, const BeginStep& begin);
  // FinishMovedVm's steps (moved_vm.cc).
  // Whether this caller does the work: false if another caller is at it or
  // has done it.
  bool ClaimDeparture(const std::string& name);
  // Marks the VM deleted and takes it out of the map; its definitions (the
  // recorded one and vm.toml).
  std::vector<config::VmDefinition> TakeOut(const std::shared_ptr<VmEntry>& vm);
  // Deletes the files of those definitions that no other VM uses, then the
  // VM's directory; fills moved.removed and moved.kept.
  void RemoveFiles(const std::string& name, const std::vector<config::VmDefinition>& defs,
                   MovedVm& moved);
  void Publish(const MovedVm& moved);

  VmRegistry& core_;
  VmControl& control_;
  VmDepartures& departures_;

  base::Mutex moved_mu_;
  base::CondVar moved_cv_;  // with moved_mu_: a departure finished
  // Guarded by moved_mu_:
  std::map<std::string, MovedVm> moved_ GUARDED_BY(moved_mu_);  // the last few VMs that left
  std::set<std::string> departing_ GUARDED_BY(moved_mu_);       // FinishMovedVm half-way
};

}  // namespace appliance
