// The file steps CheckpointService shares between its operations: which
// format a checkpoint layer has, streaming a layer into a child offline,
// creating the overlays of a plan. Private to the daemon.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "config/vm_definition.h"
#include "plan/checkpoint_plan.h"

namespace appliance {

bool PathExists(const std::string& path);
std::string Dirname(const std::string& path);

// The format of checkpoint `name`'s layer of disk `disk`. The files built on
// a layer record its format in their headers (qemu's backing format), which
// is trusted over probing: a raw image may hold anything, even bytes that
// look like a qcow2 header. Only a layer nothing builds on is probed.
config::DiskFormat LayerFormat(const config::VmDefinition& vm, const std::string& vm_dir,
                               const std::string& name, size_t disk);

// Streams `layer` into `child` (neither open anywhere else).
base::Status StreamOffline(const std::string& layer, config::DiskFormat layer_format,
                           const std::string& child, bool copy_zeros);

// Creates the overlays of a plan; on failure removes those it made.
base::Status CreateOverlays(const std::vector<NewOverlay>& overlays,
                            const std::vector<config::DiskFormat>& formats,
                            const std::string& vm_dir);
// Removes the overlays of a plan whose record could not be written.
void RemoveOverlays(const std::vector<NewOverlay>& overlays, const std::string& vm_dir);

}  // namespace appliance
