// VmService's departures: the durable record that a VM is leaving this host
// by a live move (departure_record.h), the checks it imposes, and its
// resolution with the destination. The rule they keep: a VM that may run at
// the destination never runs here too, unless an admin forces it.
#include <signal.h>

#include "protocol/move_protocol.h"
#include "peer/peer_client.h"
#include "common/process.h"
#include "daemon/vm_service.h"
#include "daemon/worker_launcher.h"
#include "ipc/worker_protocol.h"
#include "base/log.h"

namespace appliance {

using nlohmann::json;

namespace {

constexpr int kAskTimeoutMs = 10000;     // one Status call to the destination
constexpr int kKillWaitMs = 10000;       // a worker of a VM that left
constexpr int kExitRecordWaitMs = 5000;  // a worker that wrote its exit record

std::string HowToResolve(const std::string& vm) {
  return "run `ferry vm resolve " + vm + "` to ask the destination again once it is reachable, or `ferry vm resolve " +
         vm + " --force` to keep the vm here if it still cannot be asked (if the destination runs it, it then runs on both "
         "hosts, each writing its own copy of the disks)";
}

}  // namespace

bool VmService::WorkerHasExited(const std::string& name, int64_t pid, int pidfd) {
  if (auto exited = PidfdWaitExit(pidfd, 0); exited && *exited) return true;
  // The worker writes its exit record just before it exits: it is leaving.
  if (!ReadExitRecord(inventory_.WorkerExitPath(name), pid)) return false;
  (void)PidfdWaitExit(pidfd, kExitRecordWaitMs);
  return true;
}

base::Result<std::string> VmService::AskDestination(const DepartureRecord& record) {
  if (record.host.empty())
    return base::Error(base::Code::kUnavailable, "the departure record names no destination");
  ASSIGN_OR_RETURN(PeerEndpoint peer, ParsePeerEndpoint(record.host, kDefaultPeerPort));
  peer.source_host = MigrationSourceHost(options_.host);
  ASSIGN_OR_RETURN(RemoteMoveState state, AskMoveState(peer, record.migration_id, kAskTimeoutMs));
  return std::string(ToString(state));
}

void VmService::RefreshStateFromWorker(Vm& vm) {
  std::string socket;
  int64_t pid = 0;
  {
    std::lock_guard lock(vm.mu);
    if (!HasWorker(vm.runtime.state)) return;
    socket = vm.runtime.control_socket;
    pid = vm.runtime.worker_pid;
  }
  auto reply = CallWorker(socket, WorkerRequest{WorkerOp::kStatus, ""}, options_.worker_call_timeout_ms);
  if (!reply || reply->pid != pid) return;  // the supervisor reports an exit
  const VmState state = reply->state == "paused" ? VmState::kPaused : VmState::kRunning;
  std::lock_guard lock(vm.mu);
  if (vm.runtime.worker_pid != pid || vm.runtime.state == state || !HasWorker(vm.runtime.state)) return;
  RuntimeRecord after = vm.runtime;
  after.state = state;
  after.changed_unix_ms = UnixMillisNow();
  if (auto st = Persist(vm, after); !st) base::LogError(st.error().ToString());
}

void VmService::EndLiveMove(const std::string& name, const std::string& migration_id) {
  auto vm = Find(name);
  if (!vm) return;
  {
    std::lock_guard lock((*vm)->mu);
    if ((*vm)->deleted || !(*vm)->departure || (*vm)->departure->migration_id != migration_id) return;
    (*vm)->storage_move = false;
    (*vm)->departure.reset();
    if (auto st = RemoveDeparture(inventory_.VmDir(name)); !st)
      base::LogError("vm " + name + ": " + st.error().ToString());
  }
  // The move may have paused it for a switchover it then undid.
  RefreshStateFromWorker(**vm);
}

void VmService::MarkInDoubt(const std::string& name, const std::string& migration_id, const std::string& message) {
  auto vm = Find(name);
  if (!vm) return;
  {
    std::lock_guard lock((*vm)->mu);
    if ((*vm)->deleted || !(*vm)->departure || (*vm)->departure->migration_id != migration_id) return;
    (*vm)->storage_move = false;  // no job watches it any more; the record holds it
    DepartureRecord record = *(*vm)->departure;
    record.state = DepartureState::kInDoubt;
    record.message = message;
    record.changed_unix_ms = UnixMillisNow();
    (*vm)->departure = record;
    // In memory it holds the VM even if the write fails; after a restart
    // the older "moving" record does the same.
    if (auto st = WriteDeparture(inventory_.VmDir(name), record); !st)
      base::LogError("vm " + name + ": " + st.error().ToString());
    base::LogWarning("vm " + name + ": live move in doubt: " + message);
  }
  RefreshStateFromWorker(**vm);
}

base::Result<json> VmService::SettleUnwatched(const std::string& name) {
  ASSIGN_OR_RETURN(std::shared_ptr<Vm> vm, Find(name));
  std::lock_guard op(vm->op_mu);
  DepartureRecord record;
  {
    std::lock_guard lock(vm->mu);
    if (vm->deleted || !vm->departure || vm->storage_move)
      return json{{"vm", name}, {"outcome", "none"}, {"message", "nothing to settle"}};
    record = *vm->departure;
  }
  auto resolved = ResolveDepartureLocked(*vm, /*force=*/false, /*resume=*/true);
  if (!resolved && record.state == DepartureState::kMoving && !record.migration_id.empty())
    MarkInDoubt(name, record.migration_id, "no job watches the move: " + resolved.error().message());
  return resolved;
}

base::Result<VmService::MoveTarget> VmService::ReattachLiveMove(const std::string& name,
                                                                const std::string& migration_id) {
  ASSIGN_OR_RETURN(std::shared_ptr<Vm> vm, Find(name));
  std::lock_guard op(vm->op_mu);
  std::lock_guard lock(vm->mu);
  if (vm->deleted || !vm->departure || vm->departure->migration_id != migration_id ||
      vm->departure->state != DepartureState::kMoving)
    return base::Error(base::Code::kNotFound, "vm " + name + " has no departure by migration " + migration_id);
  MoveTarget target = TargetOf(*vm);
  vm->storage_move = true;
  return target;
}

std::vector<VmService::Departure> VmService::Departures() {
  std::vector<std::shared_ptr<Vm>> vms;
  {
    std::lock_guard lock(map_mu_);
    for (auto& [name, vm] : vms_) vms.push_back(vm);
  }
  std::vector<Departure> out;
  for (auto& vm : vms) {
    std::lock_guard lock(vm->mu);
    if (!vm->deleted && vm->departure) out.push_back({vm->name, *vm->departure, vm->storage_move});
  }
  return out;
}

base::Status VmService::SettleDeparture(Vm& vm, const std::string& what) {
  DepartureRecord record;
  {
    std::lock_guard lock(vm.mu);
    if (vm.deleted) return base::Error(base::Code::kNotFound, "no vm named " + vm.name);
    if (!vm.departure) return base::Ok();
    record = *vm.departure;
    if (vm.storage_move)
      return base::Error(base::Code::kFailedPrecondition,
                         "vm " + vm.name + ": cannot " + what + ": it is moving to " + record.host + " (job " +
                             record.job + "; see ferry jobs)");
  }
  base::LogInfo("vm " + vm.name + ": asking " + record.host + " about migration " + record.migration_id +
                " before " + what);
  auto resolved = ResolveDepartureLocked(vm, /*force=*/false, /*resume=*/false);
  if (!resolved) {
    return base::Error(resolved.error().code() == base::Code::kUnavailable ? base::Code::kFailedPrecondition
                                                                           : resolved.error().code(),
                       "vm " + vm.name + ": cannot " + what + ": " + resolved.error().message());
  }
  if ((*resolved)["outcome"] == "moved")
    return base::Error(base::Code::kNotFound, "vm " + vm.name + ": cannot " + what + ": it moved to " +
                                                  record.host + " and runs there; it was removed here");
  return base::Ok();
}

base::Result<json> VmService::ResolveDeparture(const std::string& name, bool force) {
  ASSIGN_OR_RETURN(std::shared_ptr<Vm> vm, Find(name));
  std::lock_guard op(vm->op_mu);
  return ResolveDepartureLocked(*vm, force, /*resume=*/true);
}

base::Result<json> VmService::ResolveDepartureLocked(Vm& vm_ref, bool force, bool resume) {
  Vm* vm = &vm_ref;
  const std::string name = vm->name;
  DepartureRecord record;
  {
    std::lock_guard lock(vm->mu);
    if (vm->deleted) return base::Error(base::Code::kNotFound, "no vm named " + name);
    if (!vm->departure)
      return json{{"vm", name}, {"outcome", "none"}, {"message", "vm " + name + " has no unresolved live move"}};
    record = *vm->departure;
    if (vm->storage_move)
      return base::Error(base::Code::kFailedPrecondition,
                         "vm " + name + " is moving to " + record.host + " right now (job " + record.job +
                             "): its job settles the move; see ferry jobs");
  }
  json out = {{"vm", name}, {"destination", record.host}, {"migration_id", record.migration_id}};
  std::string verdict;
  if (record.migration_id.empty()) {
    // A damaged record names no move to ask about: only an admin can say.
    if (!force)
      return base::Error(base::Code::kUnavailable,
                         "vm " + name + " is held: its departure record is damaged (" + record.message +
                             "), so ferry cannot tell which destination may run it; check the hosts it may have "
                             "moved to, then run `ferry vm resolve " + name + " --force` to keep it here");
    base::LogWarning("vm " + name + ": damaged departure record dropped by force");
    out["outcome"] = "here";
    out["forced"] = true;
    out["message"] = "damaged departure record dropped by force: make sure no other host runs vm " + name;
    std::lock_guard lock(vm->mu);
    vm->departure.reset();
    vm->storage_move = false;
    if (auto st = RemoveDeparture(inventory_.VmDir(name)); !st) return st.error();
    out["state"] = ToString(vm->runtime.state);
    return out;
  }
  if (auto asked = AskDestination(record); asked) {
    verdict = *asked;
  } else if (!force) {
    return base::Error(base::Code::kUnavailable,
                       "vm " + name + " is in doubt: a live move to " + record.host + " (migration " +
                           record.migration_id + ") may have committed there, and the destination cannot say (" +
                           asked.error().message() + "); " + HowToResolve(name));
  } else {
    base::LogWarning("vm " + name + ": departure to " + record.host + " (migration " + record.migration_id +
                     ") dropped by force without an answer from the destination (" + asked.error().message() +
                     "); if the destination runs the vm, it runs on both hosts");
    out["outcome"] = "here";
    out["forced"] = true;
    out["message"] = "kept here by force; the destination could not be asked (" + asked.error().message() +
                     "): make sure it does not run vm " + name;
    EndLiveMove(name, record.migration_id);
    std::lock_guard lock(vm->mu);
    out["state"] = ToString(vm->runtime.state);
    return out;
  }
  if (verdict == ToString(RemoteMoveState::kCommitted)) {
    // The VM runs there: any copy here must never run again.
    if (auto st = KillWorkerOfMovedVm(name, kKillWaitMs); !st) return st.error().Wrap("vm " + name + " moved");
    MovedVm moved = FinishMovedVm(name, "");
    base::LogInfo("vm " + name + ": the destination " + record.host + " committed migration " +
                  record.migration_id + "; removed here");
    out["outcome"] = "moved";
    out["removed"] = moved.removed;
    out["message"] = "vm " + name + " moved to " + record.host + " and runs there; removed here";
    return out;
  }
  // aborted, or unknown there: the move never committed and never will.
  EndLiveMove(name, record.migration_id);
  base::LogInfo("vm " + name + ": the destination " + record.host + " says migration " + record.migration_id +
                " is " + verdict + "; the vm stays here");
  out["outcome"] = "here";
  out["message"] = "the destination says the move is " + verdict + "; vm " + name + " stays here";
  bool paused = false;
  {
    std::lock_guard lock(vm->mu);
    paused = vm->runtime.state == VmState::kPaused;
  }
  if (resume && record.resume_here && paused) {
    // The switchover paused it; nothing of the move remains to wait for.
    if (auto st = PauseOrResume(*vm, VmAction::kResume); st) {
      out["message"] = out["message"].get<std::string>() + " and runs again (the move had paused it)";
      base::LogInfo("vm " + name + ": resumed here after the destination said the move is " + verdict);
    } else {
      out["message"] = out["message"].get<std::string>() + "; resuming it failed: " + st.error().message();
    }
  }
  std::lock_guard lock(vm->mu);
  out["state"] = ToString(vm->runtime.state);
  return out;
}

}  // namespace appliance
