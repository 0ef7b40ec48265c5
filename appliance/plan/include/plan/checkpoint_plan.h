// Checkpoint chain logic: what creating, applying or deleting a checkpoint
// does to a VM definition and which files it creates, changes or removes.
// Pure (files are only asked about through callbacks), so every rule is
// unit-tested; checkpoints.cc carries the plans out, on a stopped VM in
// ferryd and on a running one through its worker.
//
// The model (docs/config.md, "Checkpoints"): per writable disk, a checkpoint
// C owns one read-only layer file, layers[i]; the layer of C's parent is its
// backing file. The disk's path is the writable top, an overlay of the
// current checkpoint's layer. A read-only disk takes no part.
//
//   create C:  top becomes C's layer; a new empty overlay over it is the top
//   apply C:   a new empty overlay over C's layer is the top; the old top
//              (never any checkpoint's layer) is removed
//   delete C:  C's layer is streamed into each of its children (the layers
//              of C's child checkpoints, and the top if C is current), which
//              are then rebased onto C's layer's backing file
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/result.h"
#include "config/vm_definition.h"

namespace appliance {

// The path a definition records (absolute, or relative to vm_dir) as an
// absolute path.
std::string ResolveVmPath(const std::string& vm_dir, const std::string& path);

// A new writable top for one disk.
struct NewOverlay {
  size_t disk = 0;
  std::string path;     // as recorded in the definition
  std::string backing;  // the layer it overlays, as recorded
  // The backing file name to store in the overlay's header: the layer's
  // file name, since the overlay is created in the same directory.
  std::string backing_name;
};

// exists(path as recorded) says whether a file is there; plans pick names
// that are free.
using FileExists = std::function<bool(const std::string&)>;

struct CreatePlan {
  config::VmDefinition after;
  std::vector<NewOverlay> overlays;  // one per writable disk
};
// kAlreadyExists for a taken name; kFailedPrecondition when the VM has no
// writable disk, or the chain would be deeper than kMaxCheckpointDepth, or
// the tree is full.
base::Result<CreatePlan> PlanCreateCheckpoint(const config::VmDefinition& vm,
                                              const std::string& name, int64_t now_unix_ms,
                                              const FileExists& exists);

struct ApplyPlan {
  config::VmDefinition after;
  std::vector<NewOverlay> overlays;  // one per writable disk
  std::vector<std::string> remove;   // the abandoned tops, as recorded
};
// kNotFound for an unknown checkpoint.
base::Result<ApplyPlan> PlanApplyCheckpoint(const config::VmDefinition& vm, const std::string& name,
                                            const FileExists& exists);

// One writable disk's part of a delete.
struct LayerMerge {
  size_t disk = 0;
  std::string layer;  // the deleted checkpoint's layer, as recorded
  struct Child {
    std::string path;  // as recorded
    bool is_top = false;
    // The file is open in a running VM (the top, or a layer of the current
    // checkpoint or one of its ancestors): it may only change under the
    // VM's paused disk I/O.
    bool in_running_chain = false;
  };
  std::vector<Child> children;  // empty: nothing builds on the layer
};

struct DeletePlan {
  config::VmDefinition after;
  std::vector<LayerMerge> merges;  // one per writable disk
};
// kNotFound for an unknown checkpoint.
base::Result<DeletePlan> PlanDeleteCheckpoint(const config::VmDefinition& vm,
                                              const std::string& name);

// The checkpoint and its ancestors, nearest first ("" yields none).
std::vector<std::string> CheckpointLineage(const config::VmDefinition& vm, const std::string& name);

}  // namespace appliance
