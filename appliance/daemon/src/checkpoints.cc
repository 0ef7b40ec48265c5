// VmService: checkpoint create, list, apply and delete. The chain logic is in
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
#include <sys/stat.h>
#include <unistd.h>

#include "config/names.h"
#include "plan/checkpoint_plan.h"
#include "daemon/vm_service.h"
#include "ipc/worker_protocol.h"
#include "base/fd.h"
#include "base/log.h"
#include "storage/layer_stream.h"
#include "storage/qcow2.h"

namespace appliance {

using nlohmann::json;

namespace {

bool Exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

std::string Dirname(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

json CheckpointJson(const config::CheckpointSpec& c, const config::VmDefinition& vm) {
  return json{{"name", c.name},
              {"created_unix_ms", c.created_unix_ms},
              {"parent", c.parent},
              {"current", vm.current_checkpoint == c.name},
              {"layers", c.layers}};
}

// The format of checkpoint `name`'s layer of disk `disk`. The files built on
// a layer record its format in their headers (qemu's backing format), which
// is trusted over probing: a raw image may hold anything, even bytes that
// look like a qcow2 header. Only a layer nothing builds on is probed.
config::DiskFormat LayerFormat(const config::VmDefinition& vm, const std::string& vm_dir, const std::string& name,
                               size_t disk) {
  const config::CheckpointSpec* c = config::FindCheckpoint(vm, name);
  auto plan = PlanDeleteCheckpoint(vm, name);  // lists the files built on each layer
  if (plan) {
    for (const LayerMerge& m : plan->merges) {
      if (m.disk != disk) continue;
      for (const auto& child : m.children) {
        auto info = storage::ReadQcow2Info(ResolveVmPath(vm_dir, child.path));
        if (info && info->backing_format) return *info->backing_format;
      }
    }
  }
  if (c != nullptr && storage::ReadQcow2Info(ResolveVmPath(vm_dir, c->layers[disk]))) return config::DiskFormat::kQcow2;
  return config::DiskFormat::kRaw;
}

// Streams `layer` into `child` (neither open anywhere else).
base::Status StreamOffline(const std::string& layer, config::DiskFormat layer_format, const std::string& child,
                           bool copy_zeros) {
  ASSIGN_OR_RETURN(auto from, storage::OpenDisk(layer, layer_format, /*read_only=*/true));
  ASSIGN_OR_RETURN(auto into, storage::OpenDisk(child, config::DiskFormat::kQcow2, /*read_only=*/false));
  ASSIGN_OR_RETURN(uint64_t n, storage::StreamLayerRange(*from, *into, 0, from->size(), copy_zeros));
  RETURN_IF_ERROR(into->Flush());
  base::LogInfo("checkpoint: streamed " + std::to_string(n) + " bytes of " + layer + " into " + child);
  return base::Ok();
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

// Creates the overlays of a plan; on failure removes those it made.
base::Status CreateOverlays(const std::vector<NewOverlay>& overlays, const std::vector<config::DiskFormat>& formats,
                            const std::string& vm_dir) {
  for (size_t k = 0; k < overlays.size(); ++k) {
    storage::Qcow2CreateOptions o;
    o.backing_file = overlays[k].backing_name;
    o.backing_format = formats[k];
    if (auto st = storage::CreateQcow2(ResolveVmPath(vm_dir, overlays[k].path), o); !st) {
      for (size_t j = 0; j < k; ++j) ::unlink(ResolveVmPath(vm_dir, overlays[j].path).c_str());
      return st.error().Wrap("create overlay for disk " + std::to_string(overlays[k].disk));
    }
  }
  return base::Ok();
}

}  // namespace

base::Status VmService::RecordDefinition(Vm& vm, const config::VmDefinition& definition) {
  if (auto st = base::WriteFileAtomically(inventory_.DefinitionPath(vm.name), config::FormatVmDefinition(definition));
      !st)
    return st.error().Wrap("record the definition of vm " + vm.name);
  std::lock_guard lock(vm.mu);
  vm.definition = definition;
  return base::Ok();
}

base::Status VmService::CallCheckpointWorker(Vm& vm, const json& action, int timeout_ms) {
  std::string socket;
  {
    std::lock_guard lock(vm.mu);
    socket = vm.runtime.control_socket;
  }
  WorkerRequest request;
  request.op = WorkerOp::kCheckpoint;
  request.checkpoint = action.dump();
  auto reply = CallWorker(socket, request, timeout_ms);
  if (!reply) return reply.error();
  return base::Ok();
}

base::Result<json> VmService::ListCheckpoints(const std::string& name) {
  ASSIGN_OR_RETURN(std::shared_ptr<Vm> vm, Find(name));
  std::lock_guard lock(vm->mu);
  json list = json::array();
  for (const auto& c : vm->definition.checkpoints) list.push_back(CheckpointJson(c, vm->definition));
  return json{{"vm", name}, {"current_checkpoint", vm->definition.current_checkpoint}, {"checkpoints", list}};
}

base::Result<VmService::CheckpointStart> VmService::BeginCheckpointOp(Vm& vm, const std::string& name,
                                                                       const std::string& what) {
  RETURN_IF_ERROR(SettleDeparture(vm, what));
  std::lock_guard lock(vm.mu);
  if (vm.deleted) return base::Error(base::Code::kNotFound, "no vm named " + name);
  RETURN_IF_ERROR(RefuseDuringStorageMove(vm.storage_move, what, name));
  return CheckpointStart{vm.definition, vm.runtime.state};
}

base::Result<json> VmService::CreateCheckpoint(const std::string& name, const std::string& checkpoint) {
  ASSIGN_OR_RETURN(std::shared_ptr<Vm> vm, Find(name));
  RETURN_IF_ERROR(config::ValidateCheckpointName(checkpoint));
  std::lock_guard op(vm->op_mu);
  ASSIGN_OR_RETURN(CheckpointStart start, BeginCheckpointOp(*vm, name, "create checkpoint " + checkpoint));
  config::VmDefinition def = std::move(start.definition);
  const VmState state = start.state;
  const std::string dir = inventory_.VmDir(name);
  auto exists = [&](const std::string& p) { return Exists(ResolveVmPath(dir, p)); };
  ASSIGN_OR_RETURN(CreatePlan plan, PlanCreateCheckpoint(def, checkpoint, UnixMillisNow(), exists));
  const std::string what = "create checkpoint " + checkpoint + " of vm " + name;
  if (HasWorker(state)) {
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
                   {"definition_path", inventory_.DefinitionPath(name)},
                   {"definition", config::FormatVmDefinition(plan.after)},
                   {"disks", disks}};
    base::Status st = CallCheckpointWorker(*vm, action, options_.worker_call_timeout_ms);
    // The worker writes vm.toml at its commit point; whatever happened (even
    // a worker that died mid-way), the file is the truth.
    if (auto loaded = inventory_.LoadDefinition(name); loaded) {
      std::lock_guard lock(vm->mu);
      vm->definition = *loaded;
    }
    if (!st) return st.error().Wrap(what);
  } else {
    std::vector<config::DiskFormat> formats;
    for (const NewOverlay& o : plan.overlays) formats.push_back(def.disks[o.disk].format);
    if (auto st = CreateOverlays(plan.overlays, formats, dir); !st) return st.error().Wrap(what);
    if (auto st = RecordDefinition(*vm, plan.after); !st) {
      for (const NewOverlay& o : plan.overlays) ::unlink(ResolveVmPath(dir, o.path).c_str());
      return st.error().Wrap(what);
    }
  }
  base::LogInfo("vm " + name + ": checkpoint " + checkpoint + " created");
  return CheckpointJson(plan.after.checkpoints.back(), plan.after);
}

base::Result<json> VmService::ApplyCheckpoint(const std::string& name, const std::string& checkpoint, bool force) {
  ASSIGN_OR_RETURN(std::shared_ptr<Vm> vm, Find(name));
  RETURN_IF_ERROR(config::ValidateCheckpointName(checkpoint));
  std::lock_guard op(vm->op_mu);
  ASSIGN_OR_RETURN(CheckpointStart start, BeginCheckpointOp(*vm, name, "apply checkpoint " + checkpoint));
  if (config::FindCheckpoint(start.definition, checkpoint) == nullptr)
    return base::Error(base::Code::kNotFound, "vm " + name + " has no checkpoint named " + checkpoint);
  const VmState state = start.state;
  if (HasWorker(state) || state == VmState::kSaved) {
    if (!force)
      return base::Error(base::Code::kFailedPrecondition,
                         "cannot apply checkpoint " + checkpoint + " to vm " + name + ": it is " +
                             std::string(ToString(state)) +
                             ", and a checkpoint holds only the disks, not the guest's memory, so the guest "
                             "would see its disks change under it; stop the vm first, or use --force to stop it "
                             "(discarding its memory" +
                             (state == VmState::kSaved ? " and its saved state" : "") + ") and apply");
    base::LogInfo("vm " + name + ": stopping to apply checkpoint " + checkpoint);
    RETURN_IF_ERROR(Stop(*vm));
  }
  config::VmDefinition def;
  {
    std::lock_guard lock(vm->mu);
    def = vm->definition;
  }
  const std::string dir = inventory_.VmDir(name);
  const std::string what = "apply checkpoint " + checkpoint + " to vm " + name;
  auto exists = [&](const std::string& p) { return Exists(ResolveVmPath(dir, p)); };
  ASSIGN_OR_RETURN(ApplyPlan plan, PlanApplyCheckpoint(def, checkpoint, exists));
  std::vector<config::DiskFormat> formats;
  for (const NewOverlay& o : plan.overlays) formats.push_back(LayerFormat(def, dir, checkpoint, o.disk));
  if (auto st = CreateOverlays(plan.overlays, formats, dir); !st) return st.error().Wrap(what);
  if (auto st = RecordDefinition(*vm, plan.after); !st) {
    for (const NewOverlay& o : plan.overlays) ::unlink(ResolveVmPath(dir, o.path).c_str());
    return st.error().Wrap(what);
  }
  for (const std::string& old : plan.remove) {
    if (::unlink(ResolveVmPath(dir, old).c_str()) != 0 && errno != ENOENT)
      base::LogWarning("vm " + name + ": cannot remove abandoned layer " + old + ": " + std::strerror(errno));
  }
  base::LogInfo("vm " + name + ": checkpoint " + checkpoint + " applied");
  std::lock_guard lock(vm->mu);
  return json{{"checkpoint", CheckpointJson(*config::FindCheckpoint(plan.after, checkpoint), plan.after)},
              {"removed_files", plan.remove},
              {"vm", Describe(*vm)}};
}

base::Result<json> VmService::DeleteCheckpoint(const std::string& name, const std::string& checkpoint) {
  ASSIGN_OR_RETURN(std::shared_ptr<Vm> vm, Find(name));
  RETURN_IF_ERROR(config::ValidateCheckpointName(checkpoint));
  std::lock_guard op(vm->op_mu);
  ASSIGN_OR_RETURN(CheckpointStart start, BeginCheckpointOp(*vm, name, "delete checkpoint " + checkpoint));
  config::VmDefinition def = std::move(start.definition);
  const VmState state = start.state;
  const bool running = HasWorker(state);
  const std::string dir = inventory_.VmDir(name);
  const std::string what = "delete checkpoint " + checkpoint + " of vm " + name;
  ASSIGN_OR_RETURN(DeletePlan plan, PlanDeleteCheckpoint(def, checkpoint));

  struct Layer {
    std::string path;  // absolute
    config::DiskFormat format = config::DiskFormat::kRaw;
    std::string backing_file;  // as stored in its header; "" for none
    std::string backing_path;  // resolved
    config::DiskFormat backing_format = config::DiskFormat::kRaw;
  };
  std::vector<Layer> layers;
  // 1. Stream (see the top of this file for why this order).
  for (const LayerMerge& m : plan.merges) {
    Layer x;
    x.path = ResolveVmPath(dir, m.layer);
    x.format = LayerFormat(def, dir, checkpoint, m.disk);
    if (x.format == config::DiskFormat::kQcow2) {
      auto info = storage::ReadQcow2Info(x.path);
      if (!info) return info.error().Wrap(what);
      x.backing_file = info->backing_file;
      x.backing_path = info->backing_path;
      x.backing_format = info->backing_format.value_or(config::DiskFormat::kRaw);
    }
    // Without a backing file under X, what X says is zero needs no copy:
    // the children will have no backing file either.
    const bool copy_zeros = !x.backing_file.empty();
    const config::DiskSpec& disk = def.disks[m.disk];
    for (const auto& child : m.children) {
      const std::string child_path = ResolveVmPath(dir, child.path);
      base::Status st = base::Ok();
      if (running && child.in_running_chain) {
        json action = {{"action", "stream"},
                       {"disk", m.disk},
                       {"layer", x.path},
                       {"layer_format", config::ToString(x.format)},
                       {"copy_zeros", copy_zeros},
                       {"into", child.is_top ? "" : child_path},
                       {"top", ResolveVmPath(dir, disk.path)},
                       {"top_format", config::ToString(disk.format)}};
        st = CallCheckpointWorker(*vm, action, options_.save_timeout_ms);
      } else {
        st = StreamOffline(x.path, x.format, child_path, copy_zeros);
      }
      if (!st) return st.error().Wrap(what + ": nothing was changed; retry the delete");
    }
    layers.push_back(std::move(x));
  }
  // 2. The record.
  if (auto st = RecordDefinition(*vm, plan.after); !st) return st.error().Wrap(what);
  // 3. Rebase, 4. remove. The checkpoint is gone from here on; a failure
  // leaves a file behind (reported), never a broken chain.
  json removed = json::array(), kept = json::array();
  for (size_t k = 0; k < plan.merges.size(); ++k) {
    const LayerMerge& m = plan.merges[k];
    const Layer& x = layers[k];
    const config::DiskSpec& disk = def.disks[m.disk];
    bool rebased_all = true;
    json running_rebases = json::array();
    for (const auto& child : m.children) {
      const std::string child_path = ResolveVmPath(dir, child.path);
      // The same name X stored, when the child lives next to X (ferry puts
      // overlays next to their backing file); else the absolute path.
      std::string backing = x.backing_file.empty() || Dirname(child_path) == Dirname(x.path) ? x.backing_file
                                                                                             : x.backing_path;
      if (running && child.in_running_chain) {
        running_rebases.push_back(
            {{"path", child_path}, {"backing", backing}, {"backing_format", config::ToString(x.backing_format)}});
        continue;
      }
      if (auto st = storage::SetQcow2Backing(child_path, backing, x.backing_format); !st) {
        base::LogError("vm " + name + ": " + what + ": rebase " + child_path + ": " + st.error().ToString());
        rebased_all = false;
      }
    }
    if (!running_rebases.empty()) {
      json action = {{"action", "reopen"},
                     {"disk", m.disk},
                     {"top", ResolveVmPath(dir, disk.path)},
                     {"top_format", config::ToString(disk.format)},
                     {"rebase", running_rebases}};
      if (auto st = CallCheckpointWorker(*vm, action, options_.worker_call_timeout_ms); !st) {
        base::LogError("vm " + name + ": " + what + ": reopen disk " + std::to_string(m.disk) + ": " +
                       st.error().ToString());
        rebased_all = false;
      }
    }
    // A layer without a backing file is a base image (the VM's original
    // disk): the admin's file, perhaps shared, so it is left in place.
    if (!rebased_all || x.backing_file.empty()) {
      kept.push_back(x.path);
      continue;
    }
    if (::unlink(x.path.c_str()) != 0 && errno != ENOENT) {
      base::LogWarning("vm " + name + ": cannot remove merged layer " + x.path + ": " + std::strerror(errno));
      kept.push_back(x.path);
    } else {
      removed.push_back(x.path);
    }
  }
  base::LogInfo("vm " + name + ": checkpoint " + checkpoint + " deleted");
  return json{{"deleted", checkpoint}, {"vm", name}, {"removed_files", removed}, {"kept_files", kept}};
}

}  // namespace appliance
