// VmWorker's side of a shared-nothing live move, source side: the
// "live-move" control request (live_move_types.h).
//
//   {"action":"start","request":{LiveMoveRequest}}
//   {"action":"status"}            (also renews the move's lease)
//   {"action":"abort","reason":"..."}
// Every reply carries the move's status as "live_move" (LiveMoveStatus JSON).
//
// Once the destination committed, the move's notify fd wakes the control
// loop, OnLiveMoveEvent returns the exit record "moved" and the worker shuts
// its (paused) machine down and exits; ferryd deletes the source files.
#include <nlohmann/json.hpp>

#include "base/log.h"
#include "worker/vm_worker.h"
#include "worker_lifecycle.h"
#include "worker_move_request.h"

namespace appliance {
namespace {

using nlohmann::json;

}  // namespace

void VmWorker::AbortLiveMove(const std::string& reason) {
  if (live_source_) live_source_->Abort(reason);
}

VmWorker::Outcome VmWorker::ExecuteLiveMove(const WorkerRequest& request) {
  auto parsed_action = ParseMoveAction(request.live_move, "live-move");
  if (!parsed_action) return {parsed_action.error(), std::nullopt};
  const json& action = parsed_action->request;
  const std::string& what = parsed_action->name;
  if (what == "start") {
    if (live_source_ && live_source_->running())
      return {
          base::Error(base::Code::kFailedPrecondition, "a live move of this vm is already running"),
          std::nullopt};
    if (!action.contains("request") || !action["request"].is_object())
      return {
          base::Error(base::Code::kInvalidArgument, "live-move start needs a \"request\" object"),
          std::nullopt};
    auto parsed = LiveMoveRequestFromJson(action["request"]);
    if (!parsed) return {parsed.error(), std::nullopt};
    // A paused VM moves as it is and arrives paused (the plan says so).
    const vm::RunState expected =
        parsed->prepare.paused ? vm::RunState::kPaused : vm::RunState::kRunning;
    if (machine_->state() != expected)
      return {base::Error(base::Code::kFailedPrecondition,
                          "the vm is " + std::string(vm::ToString(machine_->state())) + ", not " +
                              std::string(vm::ToString(expected)) + " as the move's plan says"),
              std::nullopt};
    auto tracked = TrackDisksForMove(*machine_, args_.vm_dir);
    if (!tracked) return {tracked.error(), std::nullopt};
    live_source_.reset();  // a finished earlier attempt
    LiveMoveSource::Options o;
    o.machine = machine_.get();
    o.disks = std::move(tracked->disks);
    o.definition = std::move(tracked->definition);
    o.vm_dir = args_.vm_dir;
    o.pause = [this]() { return machine_->Pause(); };
    o.resume = [this]() -> base::Status {
      base::Status st = machine_->Resume();
      BumpRunGeneration();  // the watcher waits on it while paused
      return st;
    };
    o.notify_fd = move_event_.fd();
    if (const char* lease = std::getenv("FERRY_LIVE_MOVE_LEASE_MS");
        lease != nullptr && *lease != '\0')
      o.lease_ms = std::atoi(lease);
    // Tests shorten the in-doubt verdict's wait (a minute by default).
    if (const char* resolve = std::getenv("FERRY_LIVE_MOVE_RESOLVE_MS");
        resolve != nullptr && *resolve != '\0')
      o.resolve_retry_ms = std::atoi(resolve);
    const std::string host = parsed->data_host;
    auto started = LiveMoveSource::Start(std::move(o), std::move(*parsed));
    if (!started) return {started.error(), std::nullopt};
    live_source_ = std::move(*started);
    live_move_host_ = host;
  } else if (what == "abort") {
    if (live_source_)
      live_source_->Abort(action.value("reason", std::string("cancelled by request")));
  } else if (what != "status") {
    return {base::Error(base::Code::kInvalidArgument, "unknown live-move action \"" + what + "\""),
            std::nullopt};
  }
  if (!live_source_) return {base::Error(base::Code::kNotFound, kNoLiveMoveStarted), std::nullopt};
  WorkerReply reply = Status(std::string(vm::ToString(machine_->state())));
  reply.live_move = ToJson(live_source_->Status()).dump();
  return {reply, std::nullopt};
}

std::optional<WorkerExitRecord> VmWorker::OnLiveMoveEvent() {
  if (!live_source_ || !live_source_->committed()) return std::nullopt;
  base::LogInfo("live move committed at " + live_move_host_ + "; this worker ends");
  WorkerExitRecord r = WorkerExit("moved", "", "moved to " + live_move_host_);
  // The final report (downtime, totals): ferryd reads it from worker.exit,
  // because the worker is gone before its next status poll.
  r.live_move = ToJson(live_source_->Status()).dump();
  return r;
}

}  // namespace appliance
