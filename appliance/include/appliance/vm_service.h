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
#include <string>

#include <nlohmann/json.hpp>

#include "appliance/inventory.h"
#include "appliance/runtime_record.h"
#include "appliance/supervisor.h"
#include "appliance/vm_json.h"
#include "appliance/vm_state.h"
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
  };
  using Lock = std::unique_lock<std::mutex>;

  VmService(ServiceOptions options, Inventory inventory);
  base::Result<std::shared_ptr<Vm>> Find(const std::string& name);
  void Recover(Vm& vm);
  void OnWorkerExit(const std::string& name, int64_t pid, const ProcessExit& exit);
  // Persists runtime.json; vm.mu must be held.
  base::Status Persist(Vm& vm, const RuntimeRecord& runtime);
  nlohmann::json Describe(const Vm& vm) const;  // vm.mu held
  base::Result<std::string> ResolveProgram(const CreateRequest& request) const;

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
  // Last member: destroyed first, so its thread, which calls OnWorkerExit,
  // stops before anything it touches goes away.
  std::unique_ptr<Supervisor> supervisor_;
};

}  // namespace appliance
