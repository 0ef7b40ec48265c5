// CheckpointService::Delete: merging a checkpoint's layers into the files
// built on them, in the order checkpoint_service.cc's top comment gives
// (stream, record, rebase, remove), so no step leaves a broken chain.
#include <unistd.h>

#include <cstring>

#include "base/log.h"
#include "checkpoint_files.h"
#include "config/names.h"
#include "daemon/checkpoint_service.h"
#include "storage/qcow2.h"

namespace appliance {

using nlohmann::json;

// One delete under way: the plan and what step 1 learned of each layer.
struct CheckpointService::DeleteJob {
  std::string name;  // the VM
  std::string checkpoint;
  config::VmDefinition def;  // before the delete
  DeletePlan plan;
  std::string dir;   // the VM's directory
  std::string what;  // "delete checkpoint C of vm V", for messages
  bool running = false;
  struct Layer {
    std::string path;  // absolute
    config::DiskFormat format = config::DiskFormat::kRaw;
    std::string backing_file;  // as stored in its header; "" for none
    std::string backing_path;  // resolved
    config::DiskFormat backing_format = config::DiskFormat::kRaw;
  };
  std::vector<Layer> layers;  // one per plan.merges entry, filled by step 1
};

base::Result<DeletedCheckpoint> CheckpointService::Delete(const std::string& name,
                                                          const std::string& checkpoint) {
  ASSIGN_OR_RETURN(std::shared_ptr<VmEntry> vm, core_.Find(name));
  RETURN_IF_ERROR(config::ValidateCheckpointName(checkpoint));
  base::MutexLock op(vm->op_mu);
  ASSIGN_OR_RETURN(Start start, Begin(*vm, "delete checkpoint " + checkpoint));
  DeleteJob job;
  job.name = name;
  job.checkpoint = checkpoint;
  job.def = std::move(start.definition);
  job.running = HasWorker(start.state);
  job.dir = core_.inventory().VmDir(name);
  job.what = "delete checkpoint " + checkpoint + " of vm " + name;
  ASSIGN_OR_RETURN(job.plan, PlanDeleteCheckpoint(job.def, checkpoint));
  // 1. Stream (see the top of checkpoint_service.cc for why this order).
  RETURN_IF_ERROR(StreamLayers(*vm, job));
  // 2. The record.
  if (auto st = core_.RecordDefinition(*vm, job.plan.after); !st) return st.error().Wrap(job.what);
  // 3. Rebase, 4. remove. The checkpoint is gone from here on; a failure
  // leaves a file behind (reported), never a broken chain.
  DeletedCheckpoint out;
  out.checkpoint = checkpoint;
  out.vm = name;
  RebaseAndRemove(*vm, job, out);
  base::LogInfo("vm " + name + ": checkpoint " + checkpoint + " deleted");
  return out;
}

base::Status CheckpointService::StreamLayers(VmEntry& vm, DeleteJob& job) {
  for (const LayerMerge& m : job.plan.merges) {
    DeleteJob::Layer x;
    x.path = ResolveVmPath(job.dir, m.layer);
    x.format = LayerFormat(job.def, job.dir, job.checkpoint, m.disk);
    if (x.format == config::DiskFormat::kQcow2) {
      auto info = storage::ReadQcow2Info(x.path);
      if (!info) return info.error().Wrap(job.what);
      x.backing_file = info->backing_file;
      x.backing_path = info->backing_path;
      x.backing_format = info->backing_format.value_or(config::DiskFormat::kRaw);
    }
    // Without a backing file under X, what X says is zero needs no copy:
    // the children will have no backing file either.
    const bool copy_zeros = !x.backing_file.empty();
    const config::DiskSpec& disk = job.def.disks[m.disk];
    for (const auto& child : m.children) {
      const std::string child_path = ResolveVmPath(job.dir, child.path);
      base::Status st = base::Ok();
      if (job.running && child.in_running_chain) {
        json action = {{"action", "stream"},
                       {"disk", m.disk},
                       {"layer", x.path},
                       {"layer_format", config::ToString(x.format)},
                       {"copy_zeros", copy_zeros},
                       {"into", child.is_top ? "" : child_path},
                       {"top", ResolveVmPath(job.dir, disk.path)},
                       {"top_format", config::ToString(disk.format)}};
        st = CallWorker(vm, action, core_.options().save_timeout_ms);
      } else {
        st = StreamOffline(x.path, x.format, child_path, copy_zeros);
      }
      if (!st) return st.error().Wrap(job.what + ": nothing was changed; retry the delete");
    }
    job.layers.push_back(std::move(x));
  }
  return base::Ok();
}

void CheckpointService::RebaseAndRemove(VmEntry& vm, DeleteJob& job, DeletedCheckpoint& out) {
  for (size_t k = 0; k < job.plan.merges.size(); ++k) {
    const DeleteJob::Layer& x = job.layers[k];
    const bool rebased_all = RebaseChildren(vm, job, k);
    // A layer without a backing file is a base image (the VM's original
    // disk): the admin's file, perhaps shared, so it is left in place.
    if (!rebased_all || x.backing_file.empty()) {
      out.kept_files.push_back(x.path);
      continue;
    }
    if (::unlink(x.path.c_str()) != 0 && errno != ENOENT) {
      base::LogWarning("vm " + job.name + ": cannot remove merged layer " + x.path + ": " +
                       std::strerror(errno));
      out.kept_files.push_back(x.path);
    } else {
      out.removed_files.push_back(x.path);
    }
  }
}

bool CheckpointService::RebaseChildren(VmEntry& vm, DeleteJob& job, size_t k) {
  const LayerMerge& m = job.plan.merges[k];
  const DeleteJob::Layer& x = job.layers[k];
  const config::DiskSpec& disk = job.def.disks[m.disk];
  bool rebased_all = true;
  json running_rebases = json::array();
  for (const auto& child : m.children) {
    const std::string child_path = ResolveVmPath(job.dir, child.path);
    // The same name X stored, when the child lives next to X (ferry puts
    // overlays next to their backing file); else the absolute path.
    std::string backing = x.backing_file.empty() || Dirname(child_path) == Dirname(x.path)
                              ? x.backing_file
                              : x.backing_path;
    if (job.running && child.in_running_chain) {
      running_rebases.push_back({{"path", child_path},
                                 {"backing", backing},
                                 {"backing_format", config::ToString(x.backing_format)}});
      continue;
    }
    if (auto st = storage::SetQcow2Backing(child_path, backing, x.backing_format); !st) {
      base::LogError("vm " + job.name + ": " + job.what + ": rebase " + child_path + ": " +
                     st.error().ToString());
      rebased_all = false;
    }
  }
  if (!running_rebases.empty()) {
    json action = {{"action", "reopen"},
                   {"disk", m.disk},
                   {"top", ResolveVmPath(job.dir, disk.path)},
                   {"top_format", config::ToString(disk.format)},
                   {"rebase", running_rebases}};
    if (auto st = CallWorker(vm, action, core_.options().worker_call_timeout_ms); !st) {
      base::LogError("vm " + job.name + ": " + job.what + ": reopen disk " +
                     std::to_string(m.disk) + ": " + st.error().ToString());
      rebased_all = false;
    }
  }
  return rebased_all;
}

}  // namespace appliance
