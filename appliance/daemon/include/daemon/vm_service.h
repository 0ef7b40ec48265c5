// VmService: ferryd's VM inventory and the life-cycle of each VM's worker.
// The API handler calls it; it owns the Supervisor that watches workers.
//
// Threads: the API's connection threads call the public methods concurrently;
// the supervisor thread calls OnWorkerExit. Per VM, op_mu serializes control
// actions (held for the whole action, including worker calls that can take
// seconds), and mu guards the VM's record (held briefly, never across a worker
// call), so that show and list answer while a save is in progress.
// Lock order: op_mu before mu; map_mu_ is never held while taking either.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/departure_record.h"
#include "daemon/inventory.h"
#include "daemon/runtime_record.h"
#include "plan/storage_move_plan.h"  // KeptSource (live moves)
#include "daemon/supervisor.h"
#include "daemon/vm_json.h"
#include "daemon/vm_state.h"
#include "config/host_settings.h"

namespace appliance {

struct ServiceOptions {
  config::HostSettings host;
  std::string worker_binary;  // ferry-vmm
  std::string guest_dir;      // where guest names resolve
  std::string kvm_device = "/dev/kvm";  // reported by HostInfo; the worker reads FERRY_KVM_DEVICE itself
  int worker_ready_timeout_ms = 60000;
  int worker_call_timeout_ms = 15000;
  int save_timeout_ms = 600000;  // a save writes all of guest memory
  int exit_timeout_ms = 15000;
};

class VmService {
 public:
  // Loads the inventory and re-attaches to the workers that survived a
  // previous ferryd; VMs whose worker is gone are marked crashed.
  // kFailedPrecondition if another VmService (ferryd) holds the inventory.
  static base::Result<std::unique_ptr<VmService>> Open(ServiceOptions options);
  // Workers keep running: a ferryd restart must not stop VMs.
  ~VmService();

  nlohmann::json HostInfo();
  base::Result<nlohmann::json> List();
  base::Result<nlohmann::json> Show(const std::string& name);
  base::Result<nlohmann::json> Create(CreateRequest request);
  base::Status Delete(const std::string& name);
  // state_file: for kSave where to write ("" = <vm dir>/saved.fvs), for
  // kRestore where to read ("" = the VM's saved state); ignored otherwise.
  base::Result<nlohmann::json> Act(const std::string& name, VmAction action,
                                   const std::string& state_file);
  base::Result<std::string> ConsolePath(const std::string& name);

  // Storage moves (vm_service_move.cc; the jobs are StorageMoveService's).
  // BeginStorageMove marks the VM as moving (one move per VM; start, restore
  // and delete are refused meanwhile) and returns what the move needs.
  struct MoveTarget {
    VmState state = VmState::kStopped;
    config::VmDefinition definition;
    std::string vm_dir;
    std::string control_socket;  // when a worker runs the VM
  };
  base::Result<MoveTarget> BeginStorageMove(const std::string& name);
  // reload: re-read vm.toml (the move committed new disk paths).
  void EndStorageMove(const std::string& name, bool reload);
  // The VM's state now (a live move's poller asks after a worker call fails).
  base::Result<VmState> CurrentState(const std::string& name);
  // For a VM without a worker: writes the moved definition (atomically).
  base::Status CommitMovedDefinition(const std::string& name, const config::VmDefinition& definition);
  // Whether a storage move holds the VM (other definition changes, such as
  // checkpoints, must wait).
  bool StorageMoveActive(const std::string& name);
  // Every file the other VMs of the inventory use (FilesOfVm over both their
  // recorded definition and their vm.toml, which a worker may have changed
  // a moment ago), each with the name of a VM using it. A move's sources
  // listed here must stay.
  std::map<std::string, std::string> FilesUsedByOtherVms(const std::string& name);

  // Live moves, destination side (vm_service_incoming.cc; PeerService calls).
  // Whether the inventory holds a VM of that name (a Prepare is refused then).
  // (Not "Exists": that would hide file-local Exists(path) helpers inside
  // VmService members.)
  bool HasVm(const std::string& name);
  // Why an incoming move of a VM of this name cannot be taken, or "": a VM
  // of that name exists, another move reserved it, or a directory of that
  // name without a vm.toml is in the inventory (the adoption's rename could
  // not replace it).
  std::string IncomingNameConflict(const std::string& name);
  // An incoming move holds the name from Prepare until it is adopted or
  // cleaned up: Create refuses it meanwhile, so the committed VM can always
  // be adopted. Reserve fails with kAlreadyExists naming the conflict.
  base::Status ReserveIncomingName(const std::string& name);
  void ReleaseIncomingName(const std::string& name);
  // Takes over a committed incoming VM: renames incoming_dir (holding the
  // moved vm.toml) to the VM's directory in the inventory and registers it as
  // running under worker_pid (control_socket: its path after the rename),
  // watched by this service's Supervisor like a re-attached worker (paused:
  // the VM arrived paused, as it was at the source). A worker_pid of 0 (the
  // worker died after committing) registers it crashed.
  // Its runtime.json is written before the rename, so a ferryd that stops
  // half-way finds the VM with its worker either still incoming or adopted.
  // Releases the name's reservation. kAlreadyExists if a VM of that name
  // exists (the directory stays put).
  base::Status AdoptIncoming(const std::string& name, const std::string& incoming_dir,
                             int64_t worker_pid, const std::string& control_socket, bool paused);

  // Live moves, source side (vm_service_moved.cc; LiveMoveService calls).
  // BeginLiveMove marks a running or paused VM as moving with the storage
  // moves' flag (one move per VM; checkpoints, start, save and delete are
  // refused meanwhile) and writes its departure record (departure_record.h)
  // durably before it returns, so no switchover can happen unrecorded.
  // A departure record from an earlier move is settled first
  // (SettleDeparture), and the move refused if it cannot be.
  base::Result<MoveTarget> BeginLiveMove(const std::string& name, DepartureRecord departure);

  // Departures (vm_service_departure.cc). While a VM has a departure record,
  // start, restore, resume, save, delete, checkpoint apply and new moves of it
  // are refused unless the destination's Status settles the move first
  // (SettleDeparture): the destination may run the VM.
  // Both act only on the VM's departure by `migration_id` (another move's
  // record, or a VM that left, is not touched).
  // The move failed and the VM stays here: the record goes, the VM is free.
  void EndLiveMove(const std::string& name, const std::string& migration_id);
  // Nobody could learn whether the destination committed: the record says
  // in-doubt with `message`, no job watches the VM any more, and its listed
  // state is read again from its worker (paused, when the move paused it).
  void MarkInDoubt(const std::string& name, const std::string& migration_id, const std::string& message);
  // The resolver's step for a departure no job watches: asks the
  // destination (as ResolveDeparture) and, if it cannot answer, marks a
  // `moving` record in doubt; all under the VM's op_mu. The outcome's
  // message, or why it stays in doubt.
  base::Result<nlohmann::json> SettleUnwatched(const std::string& name);
  // A restarted ferryd's job takes the move of `migration_id` up again: the
  // VM is marked moving. kNotFound if the VM has no departure record of
  // that move (the move ended, or never got that far).
  base::Result<MoveTarget> ReattachLiveMove(const std::string& name, const std::string& migration_id);
  // Every VM with a departure record, and whether a job watches it.
  struct Departure {
    std::string vm;
    DepartureRecord record;
    bool watched = false;
  };
  std::vector<Departure> Departures();
  // `ferry vm resolve`: asks the destination of the VM's unresolved move
  // whether it committed. committed: the VM is removed here (its worker, if
  // any, is killed: the destination runs the VM); aborted or unknown there:
  // the record goes and the VM stays here, resumed if the move had paused
  // it (an admin's pause is kept); unreachable:
  // kUnavailable naming the destination, unless force, which then drops the
  // record (if the destination runs the VM, it then may run twice: the
  // reply and the log say so); a damaged record names no destination, so
  // only force drops it. Refused while a job watches the move. {"vm","outcome":"moved"|"here"|"none","destination","message",...}
  base::Result<nlohmann::json> ResolveDeparture(const std::string& name, bool force);
  // A worker that exits with exit record state "moved" handed its VM to
  // another host. FinishMovedVm drops the VM from the inventory and deletes
  // its files: every disk and chain file of its definition except those
  // another VM uses (kept), then the VM directory. Called by OnWorkerExit,
  // by Open for a worker that exited "moved" while ferryd was down, and by a
  // job whose worker died without a record once the destination said it
  // committed. report: the exit record's live_move (the worker's final
  // LiveMoveStatus JSON, if it left one).
  struct MovedVm {
    std::string name;
    std::string report;
    std::vector<std::string> removed;
    std::vector<KeptSource> kept;
  };
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

 private:
  void FinishMovesAtStart();  // Open: VMs whose worker exited "moved" meanwhile
  std::mutex moved_mu_;
  std::condition_variable moved_cv_;       // a departure finished
  std::map<std::string, MovedVm> moved_;  // guarded by moved_mu_
  std::set<std::string> departing_;       // FinishMovedVm half-way; guarded by moved_mu_

 public:

  // Checkpoints (appliance/src/checkpoints.cc; the chain logic is
  // checkpoint_plan.h). Running and paused VMs change their disks through
  // the worker, others in ferryd. Apply needs force on a VM with a worker or
  // a saved state: it stops the VM first (disk-only checkpoints cannot
  // revert a running guest's memory).
  base::Result<nlohmann::json> ListCheckpoints(const std::string& name);
  base::Result<nlohmann::json> CreateCheckpoint(const std::string& name, const std::string& checkpoint);
  base::Result<nlohmann::json> ApplyCheckpoint(const std::string& name, const std::string& checkpoint, bool force);
  base::Result<nlohmann::json> DeleteCheckpoint(const std::string& name, const std::string& checkpoint);

 private:
  struct Vm {
    std::string name;
    std::mutex op_mu;
    std::mutex mu;
    std::condition_variable exited_cv;  // with mu: the worker exited
    // Fields below guarded by mu.
    config::VmDefinition definition;
    RuntimeRecord runtime;
    bool exit_expected = false;  // a stop or save asked the worker to exit
    bool exited = false;         // the worker runtime.worker_pid has exited
    ProcessExit exit;
    bool deleted = false;
    bool storage_move = false;  // BeginStorageMove .. EndStorageMove
    // <vm dir>/departure.json as last read or written (departure_record.h).
    std::optional<DepartureRecord> departure;
  };
  using Lock = std::unique_lock<std::mutex>;

  VmService(ServiceOptions options, Inventory inventory);
  base::Result<std::shared_ptr<Vm>> Find(const std::string& name);
  MoveTarget TargetOf(const Vm& vm) const;  // vm.mu held
  void Recover(Vm& vm);
  void OnWorkerExit(const std::string& name, int64_t pid, const ProcessExit& exit);
  // Persists runtime.json; vm.mu must be held.
  base::Status Persist(Vm& vm, const RuntimeRecord& runtime);
  std::string IncomingNameConflictLocked(const std::string& name);  // map_mu_ held
  nlohmann::json Describe(const Vm& vm) const;  // vm.mu held
  base::Result<std::string> ResolveProgram(const CreateRequest& request) const;

  // Departure checks (vm_service_departure.cc). op_mu held, mu not.
  // Ok if the VM has no departure record, or if the destination's Status
  // settles it now as "not there" (the record goes); otherwise why `what`
  // cannot be done: moving (a job watches), moved (the VM left: removed
  // here), or in doubt, naming the destination and how to resolve.
  base::Status SettleDeparture(Vm& vm, const std::string& what);
  // The destination's verdict on the record's move; kUnavailable if it
  // cannot be asked.
  base::Result<std::string> AskDestination(const DepartureRecord& record);
  // op_mu held. resume: a VM the move paused is resumed when the move did
  // not commit (not for SettleDeparture, whose caller acts next).
  base::Result<nlohmann::json> ResolveDepartureLocked(Vm& vm, bool force, bool resume);
  // Re-reads the worker's run state into the runtime record (mu not held).
  void RefreshStateFromWorker(Vm& vm);
  // What happened to a worker that is gone or going: its pid's exit record,
  // or a pidfd that reports the exit (an unreaped zombie still answers
  // pidfd_open but never its control socket).
  bool WorkerHasExited(const std::string& name, int64_t pid, int pidfd);

  base::Status Launch(Vm& vm, VmAction action, const std::string& state_file);
  base::Status Stop(Vm& vm);
  base::Status PauseOrResume(Vm& vm, VmAction action);
  base::Status Save(Vm& vm, const std::string& state_file);
  // Checkpoint helpers (checkpoints.cc); op_mu held, mu not.
  // What a checkpoint operation starts from, read under vm.mu: refused if the
  // VM was deleted or a storage move holds it ("what" names the operation).
  struct CheckpointStart {
    config::VmDefinition definition;
    VmState state = VmState::kStopped;
  };
  base::Result<CheckpointStart> BeginCheckpointOp(Vm& vm, const std::string& name,
                                                  const std::string& what);
  base::Status RecordDefinition(Vm& vm, const config::VmDefinition& definition);
  base::Status CallCheckpointWorker(Vm& vm, const nlohmann::json& action, int timeout_ms);
  // Waits (vm.mu held through lock) until the worker exits; kills it if it
  // does not within the timeout.
  base::Status AwaitWorkerExit(Vm& vm, Lock& lock, int64_t pid);

  ServiceOptions options_;
  Inventory inventory_;
  // flock on <storage_root>/ferryd.lock, held for the service's life: two
  // ferryds supervising one inventory would fight over every VM.
  base::Fd lock_;
  std::mutex map_mu_;
  std::map<std::string, std::shared_ptr<Vm>> vms_;  // guarded by map_mu_
  std::set<std::string> incoming_names_;            // guarded by map_mu_
  // Last member: destroyed first, so its thread, which calls OnWorkerExit,
  // stops before anything it touches goes away.
  std::unique_ptr<Supervisor> supervisor_;
};

}  // namespace appliance
