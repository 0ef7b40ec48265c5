// VmDepartures: the checks a departure record imposes, and its resolution
// with the destination (vm_departures.h).
#include "daemon/vm_departures.h"

#include "base/log.h"
#include "daemon/move_gate.h"
#include "daemon/vm_control.h"
#include "peer/peer_client.h"
#include "peer/peer_tls.h"
#include "protocol/move_protocol.h"

namespace appliance {

namespace {

constexpr int kAskTimeoutMs = 10000;  // one Status call to the destination
constexpr int kKillWaitMs = 10000;    // a worker of a VM that left

std::string HowToResolve(const std::string& vm) {
  return "run `ferry vm resolve " + vm +
         "` to ask the destination again once it is reachable, or `ferry vm resolve " + vm +
         " --force` to keep the vm here if it still cannot be asked (if the destination runs it, "
         "it then runs on both "
         "hosts, each writing its own copy of the disks)";
}

}  // namespace

std::vector<Departure> VmDepartures::List() {
  std::vector<Departure> out;
  for (auto& vm : core_.All()) {
    base::MutexLock lock(vm->mu);
    if (!vm->deleted && vm->departure) out.push_back({vm->name, *vm->departure, vm->moving});
  }
  return out;
}

void VmDepartures::MarkInDoubt(const std::string& name, const std::string& migration_id,
                               const std::string& message) {
  auto vm = core_.Find(name);
  if (!vm) return;
  {
    base::MutexLock lock((*vm)->mu);
    if ((*vm)->deleted || !(*vm)->departure || (*vm)->departure->migration_id != migration_id)
      return;
    (*vm)->moving = false;  // no job watches it any more; the record holds it
    DepartureRecord record = *(*vm)->departure;
    record.state = DepartureState::kInDoubt;
    record.message = message;
    record.changed_unix_ms = UnixMillisNow();
    (*vm)->departure = record;
    // In memory it holds the VM even if the write fails; after a restart
    // the older "moving" record does the same.
    if (auto st = WriteDeparture(core_.inventory().VmDir(name), record); !st)
      base::LogError("vm " + name + ": " + st.error().ToString());
    base::LogWarning("vm " + name + ": live move in doubt: " + message);
  }
  control_.RefreshStateFromWorker(**vm);
}

base::Status VmDepartures::PinDestination(const std::string& name, const std::string& migration_id,
                                          const std::string& fingerprint) {
  ASSIGN_OR_RETURN(std::shared_ptr<VmEntry> vm, core_.Find(name));
  base::MutexLock lock(vm->mu);
  if (vm->deleted || !vm->departure || vm->departure->migration_id != migration_id)
    return base::Error(base::Code::kFailedPrecondition,
                       "vm " + name + " has no departure record of migration " + migration_id);
  DepartureRecord record = *vm->departure;
  record.destination_fingerprint = fingerprint;
  RETURN_IF_ERROR(WriteDeparture(core_.inventory().VmDir(name), record));
  vm->departure = record;
  return base::Ok();
}

base::Result<ResolveOutcome> VmDepartures::SettleUnwatched(const std::string& name) {
  ASSIGN_OR_RETURN(std::shared_ptr<VmEntry> vm, core_.Find(name));
  base::MutexLock op(vm->op_mu);
  DepartureRecord record;
  {
    base::MutexLock lock(vm->mu);
    if (vm->deleted || !vm->departure || vm->moving) {
      ResolveOutcome none;
      none.vm = name;
      none.message = "nothing to settle";
      return none;
    }
    record = *vm->departure;
  }
  auto resolved = ResolveLocked(*vm, /*force=*/false, /*resume=*/true);
  if (!resolved && record.state == DepartureState::kMoving && !record.migration_id.empty())
    MarkInDoubt(name, record.migration_id,
                "no job watches the move: " + resolved.error().message());
  return resolved;
}

base::Result<MoveTarget> VmDepartures::ReattachLiveMove(const std::string& name,
                                                        const std::string& migration_id) {
  ASSIGN_OR_RETURN(std::shared_ptr<VmEntry> vm, core_.Find(name));
  base::MutexLock op(vm->op_mu);
  base::MutexLock lock(vm->mu);
  if (vm->deleted || !vm->departure || vm->departure->migration_id != migration_id ||
      vm->departure->state != DepartureState::kMoving)
    return base::Error(base::Code::kNotFound,
                       "vm " + name + " has no departure by migration " + migration_id);
  MoveTarget target = core_.TargetOf(*vm);
  vm->moving = true;
  return target;
}

base::Status VmDepartures::Settle(VmEntry& vm, const std::string& what) {
  DepartureRecord record;
  {
    base::MutexLock lock(vm.mu);
    if (vm.deleted) return base::Error(base::Code::kNotFound, "no vm named " + vm.name);
    if (!vm.departure) return base::Ok();
    record = *vm.departure;
    if (vm.moving)
      return base::Error(base::Code::kFailedPrecondition,
                         "vm " + vm.name + ": cannot " + what + ": it is moving to " + record.host +
                             " (job " + record.job + "; see ferry jobs)");
  }
  base::LogInfo("vm " + vm.name + ": asking " + record.host + " about migration " +
                record.migration_id + " before " + what);
  auto resolved = ResolveLocked(vm, /*force=*/false, /*resume=*/false);
  if (!resolved) {
    return base::Error(resolved.error().code() == base::Code::kUnavailable
                           ? base::Code::kFailedPrecondition
                           : resolved.error().code(),
                       "vm " + vm.name + ": cannot " + what + ": " + resolved.error().message());
  }
  if (resolved->kind == ResolveOutcome::Kind::kMoved)
    return base::Error(base::Code::kNotFound, "vm " + vm.name + ": cannot " + what +
                                                  ": it moved to " + record.host +
                                                  " and runs there; it was removed here");
  return base::Ok();
}

base::Result<ResolveOutcome> VmDepartures::Resolve(const std::string& name, bool force) {
  ASSIGN_OR_RETURN(std::shared_ptr<VmEntry> vm, core_.Find(name));
  base::MutexLock op(vm->op_mu);
  return ResolveLocked(*vm, force, /*resume=*/true);
}

base::Result<std::string> VmDepartures::AskDestination(const DepartureRecord& record) {
  if (record.host.empty())
    return base::Error(base::Code::kUnavailable, "the departure record names no destination");
  // Only the host that accepted the Prepare may settle the move. A record
  // without its certificate is from before the Prepare was answered: the
  // worker never started, and any trusted host's "unknown" is then true.
  ASSIGN_OR_RETURN(PeerEndpoint peer,
                   MigrationPeer(record.host, core_.options().host, core_.options().peer_tls));
  peer.expected_fingerprint = record.destination_fingerprint;
  ASSIGN_OR_RETURN(RemoteMoveState state, AskMoveState(peer, record.migration_id, kAskTimeoutMs));
  return std::string(ToString(state));
}

base::Result<ResolveOutcome> VmDepartures::ResolveLocked(VmEntry& vm, bool force, bool resume) {
  const std::string& name = vm.name;
  DepartureRecord record;
  {
    base::MutexLock lock(vm.mu);
    if (vm.deleted) return base::Error(base::Code::kNotFound, "no vm named " + name);
    if (!vm.departure) {
      ResolveOutcome none;
      none.vm = name;
      none.message = "vm " + name + " has no unresolved live move";
      return none;
    }
    record = *vm.departure;
    if (vm.moving)
      return base::Error(base::Code::kFailedPrecondition,
                         "vm " + name + " is moving to " + record.host + " right now (job " +
                             record.job + "): its job settles the move; see ferry jobs");
  }
  ResolveOutcome out;
  out.vm = name;
  out.destination = record.host;
  out.migration_id = record.migration_id;
  if (record.migration_id.empty()) {
    // A damaged record names no move to ask about: only an admin can say.
    if (!force)
      return base::Error(
          base::Code::kUnavailable,
          "vm " + name + " is held: its departure record is damaged (" + record.message +
              "), so ferry cannot tell which destination may run it; check the hosts it may have "
              "moved to, then run `ferry vm resolve " +
              name + " --force` to keep it here");
    return DropDamagedRecord(vm, std::move(out));
  }
  auto asked = AskDestination(record);
  if (!asked && !force)
    return base::Error(base::Code::kUnavailable,
                       "vm " + name + " is in doubt: a live move to " + record.host +
                           " (migration " + record.migration_id +
                           ") may have committed there, and the destination cannot say (" +
                           asked.error().message() + "); " + HowToResolve(name));
  if (!asked) return KeepHereByForce(vm, record, asked.error().message(), std::move(out));
  if (*asked == ToString(RemoteMoveState::kCommitted)) return RemoveMovedVm(record, std::move(out));
  // aborted, or unknown there: the move never committed and never will.
  return StayHere(vm, record, *asked, resume, std::move(out));
}

base::Result<ResolveOutcome> VmDepartures::DropDamagedRecord(VmEntry& vm, ResolveOutcome out) {
  base::LogWarning("vm " + vm.name + ": damaged departure record dropped by force");
  out.kind = ResolveOutcome::Kind::kHere;
  out.forced = true;
  out.message =
      "damaged departure record dropped by force: make sure no other host runs vm " + vm.name;
  base::MutexLock lock(vm.mu);
  vm.departure.reset();
  vm.moving = false;
  if (auto st = RemoveDeparture(core_.inventory().VmDir(vm.name)); !st) return st.error();
  out.state = vm.runtime.state;
  return out;
}

ResolveOutcome VmDepartures::KeepHereByForce(VmEntry& vm, const DepartureRecord& record,
                                             const std::string& why, ResolveOutcome out) {
  base::LogWarning("vm " + vm.name + ": departure to " + record.host + " (migration " +
                   record.migration_id +
                   ") dropped by force without an answer from the destination (" + why +
                   "); if the destination runs the vm, it runs on both hosts");
  out.kind = ResolveOutcome::Kind::kHere;
  out.forced = true;
  out.message = "kept here by force; the destination could not be asked (" + why +
                "): make sure it does not run vm " + vm.name;
  moves_.EndLiveMove(vm.name, record.migration_id);
  base::MutexLock lock(vm.mu);
  out.state = vm.runtime.state;
  return out;
}

base::Result<ResolveOutcome> VmDepartures::RemoveMovedVm(const DepartureRecord& record,
                                                         ResolveOutcome out) {
  const std::string& name = out.vm;
  // The VM runs there: any copy here must never run again.
  if (auto st = moves_.KillWorkerOfMovedVm(name, kKillWaitMs); !st)
    return st.error().Wrap("vm " + name + " moved");
  MovedVm moved = moves_.FinishMovedVm(name, "");
  base::LogInfo("vm " + name + ": the destination " + record.host + " committed migration " +
                record.migration_id + "; removed here");
  out.kind = ResolveOutcome::Kind::kMoved;
  out.removed = moved.removed;
  out.message = "vm " + name + " moved to " + record.host + " and runs there; removed here";
  return out;
}

ResolveOutcome VmDepartures::StayHere(VmEntry& vm, const DepartureRecord& record,
                                      const std::string& verdict, bool resume, ResolveOutcome out) {
  const std::string& name = vm.name;
  moves_.EndLiveMove(name, record.migration_id);
  base::LogInfo("vm " + name + ": the destination " + record.host + " says migration " +
                record.migration_id + " is " + verdict + "; the vm stays here");
  out.kind = ResolveOutcome::Kind::kHere;
  out.message = "the destination says the move is " + verdict + "; vm " + name + " stays here";
  bool paused = false;
  {
    base::MutexLock lock(vm.mu);
    paused = vm.runtime.state == VmState::kPaused;
  }
  if (resume && record.resume_here && paused) {
    // The switchover paused it; nothing of the move remains to wait for.
    if (auto st = control_.PauseOrResume(vm, VmAction::kResume); st) {
      out.message += " and runs again (the move had paused it)";
      base::LogInfo("vm " + name + ": resumed here after the destination said the move is " +
                    verdict);
    } else {
      out.message += "; resuming it failed: " + st.error().message();
    }
  }
  base::MutexLock lock(vm.mu);
  out.state = vm.runtime.state;
  return out;
}

}  // namespace appliance
