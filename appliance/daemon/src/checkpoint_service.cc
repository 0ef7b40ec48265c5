// CheckpointService: checkpoint create, list, apply and delete. The chain logic is in
// checkpoint_plan.h; this file carries plans out — on files directly when no
// worker runs the VM, through the worker (checkpoint_worker.h) when one does.
//
// Every operation is ordered so that vm.toml never names a state the files
// do not hold, whatever step fails or wherever ferryd or the worker dies:
//
// create  overlays created (unused files) -> switch + vm.toml (the commit
//         point; on a running VM both happen with the vCPUs stopped, in the
//         worker) ; any earlier failure removes the overlays.
// apply   (VM stopped) overlays created -> vm.toml -> old tops removed.
// delete  1. C's layer X is streamed into each child (the files built on
//            it): only clusters a child does not store are written, with the
//            bytes the child already shows, so no file's contents change and
//            C itself stays intact; a failure here leaves C recorded and a
//            retry simply streams again.
//         2. vm.toml without C. From now on each child holds all X stores,
//            so the child reads the same whether its backing file is X or
//            X's backing: the record ("the child builds on C's parent") is
//            true before the headers say so.
//         3. the children are rebased onto X's backing (qemu-img rebase -u);
//            a running chain is reopened under paused guest I/O.
//         4. X is removed (a leftover on failure, never a missing file).
// On a running VM each chunk of step 1 that writes a file the VM has open
// runs under that disk's paused guest I/O; into the running top the stream
// writes through the guest's own disk object, so a guest write between two
// chunks allocates its cluster and the stream leaves it alone.
#include "daemon/checkpoint_service.h"

#include <unistd.h>

#include <cstring>

#include "base/log.h"
#include "checkpoint_files.h"
#include "config/names.h"
#include "daemon/vm_control.h"
#include "daemon/vm_departures.h"
#include "ipc/worker_protocol.h"

namespace appliance {

using nlohmann::json;

namespace {

CheckpointView ViewOf(const config::CheckpointSpec& c, const config::VmDefinition& vm) {
  return CheckpointView{c, vm.current_checkpoint == c.name};
}

// A storage move copies the files the checkpoint tree names and rewrites
// vm.toml at its switch: a checkpoint changing either meanwhile would be lost
// or left behind. BeginStorageMove takes op_mu too, so a move cannot begin
// while a checkpoint operation runs.
base::Status RefuseDuringStorageMove(bool moving, const std::string& what, const std::string& vm) {
  if (!moving) return base::Ok();
  return base::Error(base::Code::kFailedPrecondition,
                     "cannot " + what + ": a storage move of vm " + vm +
                         " is running (see ferry jobs); retry when it has ended");
}

}  // namespace

base::Status CheckpointService::CallWorker(VmEntry& vm, const json& action, int timeout_ms) {
  std::string socket;
  {
    base::MutexLock lock(vm.mu);
    socket = vm.runtime.control_socket;
  }
  WorkerRequest request;
  request.op = WorkerOp::kCheckpoint;
  request.checkpoint = action.dump();
  auto reply = appliance::CallWorker(socket, request, timeout_ms);
  if (!reply) return reply.error();
  return base::Ok();
}

base::Result<CheckpointList> CheckpointService::List(const std::string& name) {
  ASSIGN_OR_RETURN(std::shared_ptr<VmEntry> vm, core_.Find(name));
  base::MutexLock lock(vm->mu);
  CheckpointList list;
  list.vm = name;
  list.current_checkpoint = vm->definition.current_checkpoint;
  for (const auto& c : vm->definition.checkpoints)
    list.checkpoints.push_back(ViewOf(c, vm->definition));
  return list;
}

base::Result<CheckpointService::Start> CheckpointService::Begin(VmEntry& vm,
                                                                const std::string& what) {
  RETURN_IF_ERROR(departures_.Settle(vm, what));
  base::MutexLock lock(vm.mu);
  if (vm.deleted) return base::Error(base::Code::kNotFound, "no vm named " + vm.name);
  RETURN_IF_ERROR(RefuseDuringStorageMove(vm.moving, what, vm.name));
  return Start{vm.definition, vm.runtime.state};
}

base::Result<CheckpointView> CheckpointService::Create(const std::string& name,
                                                       const std::string& checkpoint) {
  ASSIGN_OR_RETURN(std::shared_ptr<VmEntry> vm, core_.Find(name));
  RETURN_IF_ERROR(config::ValidateCheckpointName(checkpoint));
  base::MutexLock op(vm->op_mu);
  ASSIGN_OR_RETURN(Start start, Begin(*vm, "create checkpoint " + checkpoint));
  const config::VmDefinition& def = start.definition;
  const std::string dir = core_.inventory().VmDir(name);
  auto exists = [&](const std::string& p) { return PathExists(ResolveVmPath(dir, p)); };
  ASSIGN_OR_RETURN(CreatePlan plan, PlanCreateCheckpoint(def, checkpoint, UnixMillisNow(), exists));
  const std::string what = "create checkpoint " + checkpoint + " of vm " + name;
  base::Status created =
      HasWorker(start.state) ? CreateRunning(*vm, def, plan) : CreateOffline(*vm, def, plan);
  if (!created) return created.error().Wrap(what);
  base::LogInfo("vm " + name + ": checkpoint " + checkpoint + " created");
  return ViewOf(plan.after.checkpoints.back(), plan.after);
}

base::Status CheckpointService::CreateRunning(VmEntry& vm, const config::VmDefinition& def,
                                              const CreatePlan& plan) {
  const std::string dir = core_.inventory().VmDir(vm.name);
  json disks = json::array();
  for (const NewOverlay& o : plan.overlays) {
    const config::DiskSpec& d = def.disks[o.disk];
    disks.push_back({{"index", o.disk},
                     {"top", ResolveVmPath(dir, d.path)},
                     {"top_format", config::ToString(d.format)},
                     {"overlay", ResolveVmPath(dir, o.path)},
                     {"backing_name", o.backing_name}});
  }
  json action = {{"action", "create"},
                 {"definition_path", core_.inventory().DefinitionPath(vm.name)},
                 {"definition", config::FormatVmDefinition(plan.after)},
                 {"disks", disks}};
  base::Status st = CallWorker(vm, action, core_.options().worker_call_timeout_ms);
  // The worker writes vm.toml at its commit point; whatever happened (even
  // a worker that died mid-way), the file is the truth.
  if (auto loaded = core_.inventory().LoadDefinition(vm.name); loaded) {
    base::MutexLock lock(vm.mu);
    vm.definition = *loaded;
  }
  return st;
}

base::Status CheckpointService::CreateOffline(VmEntry& vm, const config::VmDefinition& def,
                                              const CreatePlan& plan) {
  const std::string dir = core_.inventory().VmDir(vm.name);
  std::vector<config::DiskFormat> formats;
  for (const NewOverlay& o : plan.overlays) formats.push_back(def.disks[o.disk].format);
  RETURN_IF_ERROR(CreateOverlays(plan.overlays, formats, dir));
  if (auto st = core_.RecordDefinition(vm, plan.after); !st) {
    RemoveOverlays(plan.overlays, dir);
    return st.error();
  }
  return base::Ok();
}

base::Result<AppliedCheckpoint> CheckpointService::Apply(const std::string& name,
                                                         const std::string& checkpoint,
                                                         bool force) {
  ASSIGN_OR_RETURN(std::shared_ptr<VmEntry> vm, core_.Find(name));
  RETURN_IF_ERROR(config::ValidateCheckpointName(checkpoint));
  base::MutexLock op(vm->op_mu);
  ASSIGN_OR_RETURN(Start start, Begin(*vm, "apply checkpoint " + checkpoint));
  if (config::FindCheckpoint(start.definition, checkpoint) == nullptr)
    return base::Error(base::Code::kNotFound,
                       "vm " + name + " has no checkpoint named " + checkpoint);
  const VmState state = start.state;
  if (HasWorker(state) || state == VmState::kSaved) {
    if (!force)
      return base::Error(
          base::Code::kFailedPrecondition,
          "cannot apply checkpoint " + checkpoint + " to vm " + name + ": it is " +
              std::string(ToString(state)) +
              ", and a checkpoint holds only the disks, not the guest's memory, so the guest "
              "would see its disks change under it; stop the vm first, or use --force to stop it "
              "(discarding its memory" +
              (state == VmState::kSaved ? " and its saved state" : "") + ") and apply");
    base::LogInfo("vm " + name + ": stopping to apply checkpoint " + checkpoint);
    RETURN_IF_ERROR(control_.Stop(*vm));
  }
  config::VmDefinition def;
  {
    base::MutexLock lock(vm->mu);
    def = vm->definition;
  }
  const std::string dir = core_.inventory().VmDir(name);
  const std::string what = "apply checkpoint " + checkpoint + " to vm " + name;
  auto exists = [&](const std::string& p) { return PathExists(ResolveVmPath(dir, p)); };
  ASSIGN_OR_RETURN(ApplyPlan plan, PlanApplyCheckpoint(def, checkpoint, exists));
  std::vector<config::DiskFormat> formats;
  for (const NewOverlay& o : plan.overlays)
    formats.push_back(LayerFormat(def, dir, checkpoint, o.disk));
  if (auto st = CreateOverlays(plan.overlays, formats, dir); !st) return st.error().Wrap(what);
  if (auto st = core_.RecordDefinition(*vm, plan.after); !st) {
    RemoveOverlays(plan.overlays, dir);
    return st.error().Wrap(what);
  }
  for (const std::string& old : plan.remove) {
    if (::unlink(ResolveVmPath(dir, old).c_str()) != 0 && errno != ENOENT)
      base::LogWarning("vm " + name + ": cannot remove abandoned layer " + old + ": " +
                       std::strerror(errno));
  }
  base::LogInfo("vm " + name + ": checkpoint " + checkpoint + " applied");
  base::MutexLock lock(vm->mu);
  return AppliedCheckpoint{ViewOf(*config::FindCheckpoint(plan.after, checkpoint), plan.after),
                           plan.remove, core_.View(*vm)};
}

}  // namespace appliance
