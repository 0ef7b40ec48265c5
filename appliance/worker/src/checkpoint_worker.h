// The worker's side of checkpoints on a running VM (ferry-vmm owns the disk
// handles, so only it can change a running disk). ferryd plans (see
// checkpoint_plan.h) and sends one action per request, as a JSON object in
// the "checkpoint" member of a WorkerOp::kCheckpoint request:
//
//   {"action":"create", "definition_path":P, "definition":TOML,
//    "disks":[{"index":0, "top":ABS, "top_format":"raw", "overlay":ABS,
//    "backing_name":"root.img"}]}
//      Creates every overlay file, pauses the VM, installs the overlays
//      (flushing each old top first), writes the new definition atomically —
//      the commit point — and resumes. Any failure before the commit point
//      puts every disk back on its old top (the guest ran no instruction on
//      the overlays, so nothing is lost) and removes the overlay files.
//
//   {"action":"stream", "disk":0, "layer":ABS, "layer_format":"qcow2", "copy_zeros":true,
//    "into":ABS or "" (the running top), "top":ABS, "top_format":"qcow2"}
//      StreamLayerRange of the layer into its child, one chunk per
//      TransformDisk (guest I/O to that disk paused for each chunk only).
//      Into the top: through the running disk itself. Into a lower layer of
//      the running chain: through a handle of our own, flushed, after which
//      the running chain is reopened, still inside the pause — the running
//      handles cache the layer's metadata and size from when they were
//      opened, and must never see the layer change under them.
//
//   {"action":"reopen", "disk":0, "top":ABS, "top_format":"qcow2",
//    "rebase":[{"path":ABS, "backing":NAME, "backing_format":"raw"}]}
//      Under paused guest I/O: flush, re-point each file's backing file
//      (qemu-img rebase -u), reopen the running chain. On failure the old
//      backing files are restored and the old handles stay.
//
// A running disk may be a storage::TrackingDisk (a storage move installed
// it and keeps it); its inner disk is switched so the wrapper stays valid.
#pragma once

#include <functional>
#include <string>

#include "base/result.h"
#include "vm/machine.h"

namespace appliance {

// Runs one checkpoint action on the worker's machine. pause/resume stop and
// restart the vCPUs the way the worker's own pause and resume do.
base::Status ExecuteCheckpointAction(vm::Machine& machine, const std::string& action_json,
                                     const std::function<base::Status()>& pause,
                                     const std::function<base::Status()>& resume);

}  // namespace appliance
