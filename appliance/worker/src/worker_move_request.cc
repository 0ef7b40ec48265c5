// The worker's move requests' shared first steps (worker_move_request.h).
#include "worker_move_request.h"

#include "engine/tracking_disks.h"

namespace appliance {

base::Result<MoveAction> ParseMoveAction(const std::string& text, const std::string& op) {
  nlohmann::json request = nlohmann::json::parse(text, nullptr, false);
  if (!request.is_object() || !request.contains("action") || !request["action"].is_string())
    return base::Error(base::Code::kInvalidArgument, op + " request needs an \"action\"");
  std::string name = request["action"].get<std::string>();
  return MoveAction{std::move(request), std::move(name)};
}

base::Result<TrackedVm> TrackDisksForMove(vm::Machine& machine, const std::string& vm_dir) {
  TrackedVm tracked;
  ASSIGN_OR_RETURN(tracked.definition, config::LoadVmDefinition(vm_dir + "/vm.toml"));
  if (tracked.definition.disks.size() != machine.disk_count())
    return base::Error(base::Code::kFailedPrecondition,
                       "vm.toml lists " + std::to_string(tracked.definition.disks.size()) +
                           " disks, the running vm has " + std::to_string(machine.disk_count()));
  for (size_t i = 0; i < machine.disk_count(); ++i) {
    ASSIGN_OR_RETURN(storage::TrackingDisk * disk, EnsureTracking(machine, i));
    tracked.disks.push_back(disk);
  }
  return tracked;
}

}  // namespace appliance
