#include "plan/checkpoint_plan.h"
#include "config/names.h"

#include <algorithm>
#include <set>

namespace appliance {
namespace {

std::string Dirname(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return "";
  return path.substr(0, slash + 1);  // keeps the '/'
}

std::string Basename(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// "root.img" -> "root", "root.base.qcow2" -> "root": overlays are named
// <stem>.<checkpoint>.qcow2, after the disk's original file and the
// checkpoint whose changes they hold.
std::string Stem(const std::string& path) {
  std::string base = Basename(path);
  size_t dot = base.find('.', 1);
  return dot == std::string::npos ? base : base.substr(0, dot);
}

// A free overlay name next to `layer` for the changes made after checkpoint
// `name`: <stem>.<name>.qcow2, else <stem>.<name>-2.qcow2, -3, ...
std::string OverlayPath(const std::string& layer, const std::string& name, const FileExists& exists,
                        std::set<std::string>& taken) {
  const std::string prefix = Dirname(layer) + Stem(layer) + "." + name;
  for (int n = 1;; ++n) {
    std::string candidate = prefix + (n == 1 ? "" : "-" + std::to_string(n)) + ".qcow2";
    if (taken.count(candidate) == 0 && !exists(candidate)) {
      taken.insert(candidate);
      return candidate;
    }
  }
}

// Every file the definition records, so a new name never collides with one
// (even one whose file is missing).
std::set<std::string> RecordedFiles(const config::VmDefinition& vm) {
  std::set<std::string> files;
  for (const auto& d : vm.disks) files.insert(d.path);
  for (const auto& c : vm.checkpoints) files.insert(c.layers.begin(), c.layers.end());
  return files;
}

bool HasWritableDisk(const config::VmDefinition& vm) {
  return std::any_of(vm.disks.begin(), vm.disks.end(), [](const auto& d) { return !d.read_only; });
}

base::Error NoSuchCheckpoint(const config::VmDefinition& vm, const std::string& name) {
  return base::Error(base::Code::kNotFound, "vm " + vm.name + " has no checkpoint named " + name);
}

}  // namespace

std::string ResolveVmPath(const std::string& vm_dir, const std::string& path) {
  if (!path.empty() && path[0] == '/') return path;
  return vm_dir + "/" + path;
}

std::vector<std::string> CheckpointLineage(const config::VmDefinition& vm,
                                           const std::string& name) {
  std::vector<std::string> out;
  for (const config::CheckpointSpec* c = config::FindCheckpoint(vm, name); c != nullptr;
       c = c->parent.empty() ? nullptr : config::FindCheckpoint(vm, c->parent)) {
    out.push_back(c->name);
    if (out.size() > vm.checkpoints.size()) break;  // a cycle; validation forbids it
  }
  return out;
}

base::Result<CreatePlan> PlanCreateCheckpoint(const config::VmDefinition& vm,
                                              const std::string& name, int64_t now_unix_ms,
                                              const FileExists& exists) {
  RETURN_IF_ERROR(config::ValidateCheckpointName(name));
  if (config::FindCheckpoint(vm, name) != nullptr)
    return base::Error(base::Code::kAlreadyExists,
                       "vm " + vm.name + " already has a checkpoint named " + name);
  if (!HasWritableDisk(vm))
    return base::Error(base::Code::kFailedPrecondition,
                       "vm " + vm.name + " has no writable disk: a checkpoint would hold nothing");
  if (vm.checkpoints.size() >= config::kMaxCheckpoints)
    return base::Error(base::Code::kFailedPrecondition,
                       "vm " + vm.name + " has " + std::to_string(vm.checkpoints.size()) +
                           " checkpoints, the most it may have; delete some first");
  if (CheckpointLineage(vm, vm.current_checkpoint).size() >= config::kMaxCheckpointDepth)
    return base::Error(
        base::Code::kFailedPrecondition,
        "vm " + vm.name + ": its disks already build on " +
            std::to_string(config::kMaxCheckpointDepth) +
            " checkpoints, the deepest chain ferry keeps (qcow2 backing chains are at most 32 "
            "files); delete one of them first");
  CreatePlan plan;
  plan.after = vm;
  config::CheckpointSpec c;
  c.name = name;
  c.created_unix_ms = now_unix_ms;
  c.parent = vm.current_checkpoint;
  std::set<std::string> taken = RecordedFiles(vm);
  for (size_t i = 0; i < vm.disks.size(); ++i) {
    const config::DiskSpec& d = vm.disks[i];
    c.layers.push_back(d.path);  // read-only: the disk itself; writable: the frozen top
    if (d.read_only) continue;
    NewOverlay o;
    o.disk = i;
    o.backing = d.path;
    o.backing_name = Basename(d.path);
    o.path = OverlayPath(d.path, name, exists, taken);
    plan.after.disks[i].path = o.path;
    plan.after.disks[i].format = config::DiskFormat::kQcow2;
    plan.overlays.push_back(std::move(o));
  }
  plan.after.checkpoints.push_back(std::move(c));
  plan.after.current_checkpoint = name;
  RETURN_IF_ERROR(config::ValidateVmDefinition(plan.after, "vm " + vm.name));
  return plan;
}

base::Result<ApplyPlan> PlanApplyCheckpoint(const config::VmDefinition& vm, const std::string& name,
                                            const FileExists& exists) {
  RETURN_IF_ERROR(config::ValidateCheckpointName(name));
  const config::CheckpointSpec* c = config::FindCheckpoint(vm, name);
  if (c == nullptr) return NoSuchCheckpoint(vm, name);
  ApplyPlan plan;
  plan.after = vm;
  std::set<std::string> taken = RecordedFiles(vm);
  for (size_t i = 0; i < vm.disks.size(); ++i) {
    if (vm.disks[i].read_only) continue;
    NewOverlay o;
    o.disk = i;
    o.backing = c->layers[i];
    o.backing_name = Basename(c->layers[i]);
    o.path = OverlayPath(c->layers[i], name, exists, taken);
    plan.after.disks[i].path = o.path;
    plan.after.disks[i].format = config::DiskFormat::kQcow2;
    // The old top holds only changes made since the VM left its checkpoint,
    // and no checkpoint's layer is ever a top: nothing needs it.
    plan.remove.push_back(vm.disks[i].path);
    plan.overlays.push_back(std::move(o));
  }
  plan.after.current_checkpoint = name;
  RETURN_IF_ERROR(config::ValidateVmDefinition(plan.after, "vm " + vm.name));
  return plan;
}

base::Result<DeletePlan> PlanDeleteCheckpoint(const config::VmDefinition& vm,
                                              const std::string& name) {
  RETURN_IF_ERROR(config::ValidateCheckpointName(name));
  const config::CheckpointSpec* c = config::FindCheckpoint(vm, name);
  if (c == nullptr) return NoSuchCheckpoint(vm, name);
  const std::vector<std::string> running = CheckpointLineage(vm, vm.current_checkpoint);
  auto in_running = [&](const std::string& cp) {
    return std::find(running.begin(), running.end(), cp) != running.end();
  };
  DeletePlan plan;
  for (size_t i = 0; i < vm.disks.size(); ++i) {
    if (vm.disks[i].read_only) continue;
    LayerMerge m;
    m.disk = i;
    m.layer = c->layers[i];
    for (const config::CheckpointSpec& child : vm.checkpoints) {
      if (child.parent == name)
        m.children.push_back({child.layers[i], false, in_running(child.name)});
    }
    if (vm.current_checkpoint == name) m.children.push_back({vm.disks[i].path, true, true});
    plan.merges.push_back(std::move(m));
  }
  plan.after = vm;
  auto& cps = plan.after.checkpoints;
  cps.erase(std::remove_if(cps.begin(), cps.end(), [&](const auto& x) { return x.name == name; }),
            cps.end());
  for (auto& x : cps) {
    if (x.parent == name) x.parent = c->parent;
  }
  if (plan.after.current_checkpoint == name) plan.after.current_checkpoint = c->parent;
  // A disk whose format is raw can only be the top while no checkpoint is
  // current, and the tops keep their files here; validation confirms it.
  RETURN_IF_ERROR(config::ValidateVmDefinition(plan.after, "vm " + vm.name));
  return plan;
}

}  // namespace appliance
