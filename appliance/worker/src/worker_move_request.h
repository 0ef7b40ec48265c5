// What the worker's two move requests, "move" (vm_worker_move.cc) and
// "live-move" (vm_worker_live_move.cc), read and set up alike before each
// does its own work. Called on the worker's control thread.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "config/vm_definition.h"
#include "storage/tracking_disk.h"
#include "vm/machine.h"

namespace appliance {

// A request's JSON object and its "action" ("start", "status", "abort").
struct MoveAction {
  nlohmann::json request;
  std::string name;
};
// kInvalidArgument unless `text` is an object with a string "action";
// `op` ("move", "live-move") names the request in that error.
base::Result<MoveAction> ParseMoveAction(const std::string& text, const std::string& op);

// The VM as a move starts it: its definition as ferryd last wrote it (a
// checkpoint may have changed the disk paths since the worker started), and
// each of the machine's disks under a TrackingDisk (EnsureTracking).
struct TrackedVm {
  config::VmDefinition definition;
  std::vector<storage::TrackingDisk*> disks;  // owned by the machine's devices
};
// kFailedPrecondition if vm.toml lists another number of disks than the
// machine has.
base::Result<TrackedVm> TrackDisksForMove(vm::Machine& machine, const std::string& vm_dir);

}  // namespace appliance
