// CheckpointService: a VM's checkpoints — list, create, apply, delete. The
// chain logic is plan/checkpoint_plan.h; this service carries the plans out,
// on files directly when no worker runs the VM, through the worker
// (checkpoint_worker.h) when one does. checkpoint_service.cc's top comment
// has the order of each operation's steps (what a failure leaves).
// Apply needs force on a VM with a worker or a saved state: it stops the VM
// first (disk-only checkpoints cannot revert a running guest's memory).
//
// Threads: any. Create, apply and delete hold the VM's op_mu throughout (a
// storage move takes it too to begin, so none runs during one); list only
// the VM's mu. Locks per vm_registry.h.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "daemon/vm_registry.h"
#include "daemon/vm_views.h"
#include "plan/checkpoint_plan.h"

namespace appliance {

class VmControl;
class VmDepartures;

class CheckpointService {
 public:
  // All must outlive this.
  CheckpointService(VmRegistry& core, VmControl& control, VmDepartures& departures)
      : core_(core), control_(control), departures_(departures) {}

  base::Result<CheckpointList> List(const std::string& name);
  base::Result<CheckpointView> Create(const std::string& name, const std::string& checkpoint);
  base::Result<AppliedCheckpoint> Apply(const std::string& name, const std::string& checkpoint,
                                        bool force);
  base::Result<DeletedCheckpoint> Delete(const std::string& name, const std::string& checkpoint);

 private:
  // What an operation starts from, read under vm.mu: refused if the VM was
  // deleted, has an unsettled departure, or a storage move holds it ("what"
  // names the operation). op_mu held.
  struct Start {
    config::VmDefinition definition;
    VmState state = VmState::kStopped;
  };
  base::Result<Start> Begin(VmEntry& vm, const std::string& what) REQUIRES(vm.op_mu);
  // Sends one checkpoint action (checkpoint_worker.h) to the VM's worker.
  base::Status CallWorker(VmEntry& vm, const nlohmann::json& action, int timeout_ms);
  // Create's two ways: through the worker, or on the files.
  base::Status CreateRunning(VmEntry& vm, const config::VmDefinition& def, const CreatePlan& plan);
  base::Status CreateOffline(VmEntry& vm, const config::VmDefinition& def, const CreatePlan& plan);

  // Delete's steps (checkpoint_delete.cc).
  struct DeleteJob;
  base::Status StreamLayers(VmEntry& vm, DeleteJob& job);
  void RebaseAndRemove(VmEntry& vm, DeleteJob& job, DeletedCheckpoint& out);
  bool RebaseChildren(VmEntry& vm, DeleteJob& job, size_t k);

  VmRegistry& core_;
  VmControl& control_;
  VmDepartures& departures_;
};

}  // namespace appliance
