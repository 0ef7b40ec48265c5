// VmWorker's side of a live storage move: the "move" control request.
//
//   {"action":"start","job_id":"...","destination":"/abs","max_bytes_per_second":0}
//   {"action":"status"}      (also renews the mover's lease)
//   {"action":"abort"}
// Every reply carries the mover's status as "move" (storage_mover.h).
//
// Each disk is wrapped in a storage::TrackingDisk on the first move (through
// Machine::TransformDisk, on this control thread) and stays wrapped, so its
// dirty bitmap keeps recording guest writes between attempts (resume).
#include <nlohmann/json.hpp>

#include "base/fd.h"
#include "base/log.h"
#include "config/vm_definition.h"
#include "worker/vm_worker.h"
#include "worker_move_request.h"

namespace appliance {

using nlohmann::json;

void VmWorker::AbortMove(const std::string& reason) {
  if (mover_) mover_->Abort(reason);
}

VmWorker::Outcome VmWorker::ExecuteMove(const WorkerRequest& request) {
  auto parsed_action = ParseMoveAction(request.move, "move");
  if (!parsed_action) return {parsed_action.error(), std::nullopt};
  const json& action = parsed_action->request;
  const std::string& what = parsed_action->name;
  if (!mover_) {
    StorageMover::Options options;
    options.vm_dir = args_.vm_dir;
    const std::string toml = args_.vm_dir + "/vm.toml";
    options.commit = [toml](const config::VmDefinition& def) {
      return base::WriteFileAtomically(toml, config::FormatVmDefinition(def));
    };
    if (const char* lease = std::getenv("FERRY_MOVE_LEASE_MS"); lease != nullptr && *lease != '\0')
      options.lease_ms = std::atoi(lease);
    auto created = StorageMover::Create(std::move(options));
    if (!created) return {created.error(), std::nullopt};
    mover_ = std::move(*created);
  }
  if (what == "start") {
    MoveRequest r;
    r.job_id = action.value("job_id", "");
    r.destination = action.value("destination", "");
    if (action.contains("max_bytes_per_second") &&
        action["max_bytes_per_second"].is_number_unsigned())
      r.max_bytes_per_second = action["max_bytes_per_second"].get<uint64_t>();
    auto tracked = TrackDisksForMove(*machine_, args_.vm_dir);
    if (!tracked) return {tracked.error(), std::nullopt};
    if (auto st = mover_->Start(r, tracked->definition, std::move(tracked->disks)); !st)
      return {st.error(), std::nullopt};
  } else if (what == "abort") {
    mover_->Abort("cancelled by request");
  } else if (what != "status") {
    return {base::Error(base::Code::kInvalidArgument, "unknown move action \"" + what + "\""),
            std::nullopt};
  }
  WorkerReply reply = Status(std::string(vm::ToString(machine_->state())));
  reply.move = MoveStatusToJson(mover_->Status()).dump();
  return {reply, std::nullopt};
}

}  // namespace appliance
