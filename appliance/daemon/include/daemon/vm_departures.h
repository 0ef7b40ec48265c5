// VmDepartures: the VMs that are leaving, or may have left, this host by a
// live move — each with a durable departure record (departure_record.h) —
// and their resolution with the destination. The rule they keep: a VM that
// may run at the destination never runs here too, unless an admin forces it.
// While a VM has a departure record, start, restore, resume, save, delete,
// checkpoint apply and new moves of it are refused unless the destination's
// Status settles the move first (Settle).
//
// Threads: any. Resolve, SettleUnwatched and ReattachLiveMove take the VM's
// op_mu; Settle runs under the caller's. Locks per vm_registry.h.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "daemon/departure_record.h"
#include "daemon/vm_registry.h"
#include "daemon/vm_views.h"

namespace appliance {

class MoveGate;
class VmControl;

class VmDepartures {
 public:
  // All must outlive this.
  VmDepartures(VmRegistry& core, VmControl& control, MoveGate& moves)
      : core_(core), control_(control), moves_(moves) {}

  // Every VM with a departure record, and whether a job watches it.
  std::vector<Departure> List();
  // `ferry vm resolve`: asks the destination of the VM's unresolved move
  // whether it committed. committed: the VM is removed here (its worker, if
  // any, is killed: the destination runs the VM); aborted or unknown there:
  // the record goes and the VM stays here, resumed if the move had paused
  // it (an admin's pause is kept); unreachable: kUnavailable naming the
  // destination, unless force, which then drops the record (if the
  // destination runs the VM, it then may run twice: the outcome and the log
  // say so); a damaged record names no destination, so only force drops it.
  // Refused while a job watches the move.
  base::Result<ResolveOutcome> Resolve(const std::string& name, bool force);
  // The resolver's step for a departure no job watches: asks the
  // destination (as Resolve) and, if it cannot answer, marks a `moving`
  // record in doubt; all under the VM's op_mu. The outcome, or why it stays
  // in doubt.
  base::Result<ResolveOutcome> SettleUnwatched(const std::string& name);
  // The destination of `migration_id` presented `fingerprint` at Prepare:
  // recorded (fsynced) before the worker starts, so that after any restart
  // only that host's answer settles the move.
  base::Status PinDestination(const std::string& name, const std::string& migration_id,
                              const std::string& fingerprint);
  // Nobody could learn whether the destination committed the move of
  // `migration_id`: the record says in-doubt with `message`, no job watches
  // the VM any more, and its listed state is read again from its worker
  // (paused, when the move paused it).
  void MarkInDoubt(const std::string& name, const std::string& migration_id,
                   const std::string& message);
  // A restarted ferryd's job takes the move of `migration_id` up again: the
  // VM is marked moving. kNotFound if the VM has no departure record of
  // that move (the move ended, or never got that far).
  base::Result<MoveTarget> ReattachLiveMove(const std::string& name,
                                            const std::string& migration_id);

  // For the other pieces; op_mu held, mu not. Ok if the VM has no departure
  // record, or if the destination's Status settles it now as "not there"
  // (the record goes); otherwise why `what` cannot be done: moving (a job
  // watches), moved (the VM left: removed here), or in doubt, naming the
  // destination and how to resolve.
  base::Status Settle(VmEntry& vm, const std::string& what) REQUIRES(vm.op_mu);

 private:
  // op_mu held. resume: a VM the move paused is resumed when the move did
  // not commit (not for Settle, whose caller acts next).
  base::Result<ResolveOutcome> ResolveLocked(VmEntry& vm, bool force, bool resume)
      REQUIRES(vm.op_mu);
  // The destination's verdict on the record's move; kUnavailable if it
  // cannot be asked.
  base::Result<std::string> AskDestination(const DepartureRecord& record);
  // ResolveLocked's outcomes.
  base::Result<ResolveOutcome> DropDamagedRecord(VmEntry& vm, ResolveOutcome out);
  ResolveOutcome KeepHereByForce(VmEntry& vm, const DepartureRecord& record, const std::string& why,
                                 ResolveOutcome out);
  base::Result<ResolveOutcome> RemoveMovedVm(const DepartureRecord& record, ResolveOutcome out);
  ResolveOutcome StayHere(VmEntry& vm, const DepartureRecord& record, const std::string& verdict,
                          bool resume, ResolveOutcome out);

  VmRegistry& core_;
  VmControl& control_;
  MoveGate& moves_;
};

}  // namespace appliance
