// ferry-vmm --incoming: the destination of a live move (docs/live_move.md).
// The worker directory D = <storage_root>/incoming/<migration id>/ holds the
// moved definition (vm.toml, disk paths at the destination) and the plan
// (incoming.json, PrepareRequest JSON) and whom the data streams must come
// from (incoming-tls.json), all written by the destination ferryd. The worker builds an incoming
// machine (guest RAM only), starts a LiveMoveDestination and reports "ready <port>". Until the move
// is decided it answers only status and stop; once committed it is an ordinary worker whose VM
// runs, and if the move fails it exits "failed" (ferryd removes the directory and the destination
// files).
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "base/fd.h"
#include "base/log.h"
#include "config/vm_definition.h"
#include "ipc/vm_dir_files.h"
#include "worker/vm_worker.h"
#include "worker_lifecycle.h"

namespace appliance {
namespace {

// One of the JSON files ferryd wrote into the incoming directory, decoded.
template <typename T>
base::Result<T> LoadJsonFile(const std::string& path,
                             base::Result<T> (*decode)(const nlohmann::json&)) {
  ASSIGN_OR_RETURN(std::string text, base::ReadFileToString(path));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return base::Error(base::Code::kDataLoss, path + ": not JSON");
  auto decoded = decode(j);
  if (!decoded) return decoded.error().Wrap(path);
  return decoded;
}

}  // namespace

base::Result<std::unique_ptr<VmWorker>> VmWorker::OpenIncoming(const WorkerArgs& args,
                                                               const std::string& kvm_device,
                                                               base::Fd signal_fd) {
  ASSIGN_OR_RETURN(config::VmDefinition definition,
                   config::LoadVmDefinition(args.vm_dir + "/vm.toml"));
  ASSIGN_OR_RETURN(
      PrepareRequest plan,
      LoadJsonFile<PrepareRequest>(args.vm_dir + "/" + kIncomingPlanFile, PrepareRequestFromJson));
  ASSIGN_OR_RETURN(PeerTrust trust, LoadJsonFile<PeerTrust>(args.vm_dir + "/" + kIncomingTlsFile,
                                                            PeerTrustFromJson));
  if (plan.migration_id != args.migration_id)
    return base::Error(base::Code::kInvalidArgument, "--migration-id " + args.migration_id +
                                                         " does not match " + kIncomingPlanFile +
                                                         " (" + plan.migration_id + ")");
  ASSIGN_OR_RETURN(vm::MachineOptions options, WorkerMachineOptions(definition, args, kvm_device));
  ASSIGN_OR_RETURN(std::unique_ptr<vm::Machine> machine, vm::Machine::CreateIncoming(options));
  ASSIGN_OR_RETURN(WorkerFds fds, OpenWorkerFds(args));
  std::unique_ptr<VmWorker> worker(new VmWorker(args, std::move(machine), std::move(fds.listen),
                                                std::move(signal_fd), std::move(fds.ended),
                                                std::move(fds.move_event)));

  LiveMoveDestination::Options o;
  o.machine = worker->machine_.get();
  o.vm_dir = args.vm_dir;
  o.plan = std::move(plan);
  o.listen_host = args.incoming_host;
  o.tls = std::move(trust);
  o.notify_fd = worker->move_event_.fd();
  // Runs on the destination's commit thread after the commit point, while
  // the control thread only answers status (it touches neither the machine
  // nor the watcher until OnIncomingEvent). A VM paused at the source stays
  // paused (FinishIncoming leaves it so) until someone resumes it here.
  VmWorker* w = worker.get();
  const bool arrives_paused = o.plan.paused;
  o.resume = [w, arrives_paused]() -> base::Status {
    if (!arrives_paused) RETURN_IF_ERROR(w->machine_->Resume());
    w->StartWatcher();  // only now: an incoming machine has nothing to watch
    return base::Ok();
  };
  auto started = LiveMoveDestination::Start(std::move(o));
  if (!started) return started.error();
  worker->incoming_ = std::move(*started);
  worker->ready_line_ = "ready " + std::to_string(worker->incoming_->port());
  base::LogInfo("incoming move " + args.migration_id + ": listening on " + args.incoming_host +
                ":" + std::to_string(worker->incoming_->port()));
  return worker;
}

VmWorker::Outcome VmWorker::ExecuteIncoming(const WorkerRequest& request) {
  const bool committed = incoming_->outcome() == LiveMoveDestination::Outcome::kCommitted;
  auto status = [&] {
    WorkerReply r;
    r.pid = ::getpid();
    // Before the commit the machine is being built by the destination's
    // threads: nothing but its memory size may be read.
    r.state = committed ? std::string(vm::ToString(machine_->state())) : "incoming";
    r.stats.memory_bytes = machine_->memory_size();
    r.live_move =
        ToJson(incoming_->Status()).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return r;
  };
  switch (request.op) {
    case WorkerOp::kStatus: return {status(), std::nullopt};
    case WorkerOp::kStop: {
      incoming_->Abort("stopped by request");
      WorkerReply r = status();
      if (incoming_->outcome() == LiveMoveDestination::Outcome::kCommitted) {
        r.state = "stopped";
        return {r, WorkerExit("stopped")};
      }
      r.state = "stopped";
      return {r, WorkerExit("stopped", "", "incoming move aborted")};
    }
    case WorkerOp::kLiveMove: {
      // ferryd's peer service may also speak the live-move op: status, or
      // abort (the worker then exits through OnIncomingEvent).
      nlohmann::json j = nlohmann::json::parse(request.live_move, nullptr, false);
      std::string action = j.is_object() && j.contains("action") && j["action"].is_string()
                               ? j["action"].get<std::string>()
                               : "";
      if (action == "status") return {status(), std::nullopt};
      if (action == "abort") {
        std::string reason = j.contains("reason") && j["reason"].is_string()
                                 ? j["reason"].get<std::string>()
                                 : "aborted by ferryd";
        incoming_->Abort(reason);
        return {status(), std::nullopt};
      }
      return {base::Error(base::Code::kFailedPrecondition,
                          "vm is incoming (live move in progress): live-move action \"" + action +
                              "\" is for the source"),
              std::nullopt};
    }
    default: break;
  }
  return {base::Error(base::Code::kFailedPrecondition, "vm is incoming (live move in progress)"),
          std::nullopt};
}

std::optional<WorkerExitRecord> VmWorker::OnIncomingEvent() {
  if (!incoming_) return std::nullopt;
  switch (incoming_->outcome()) {
    case LiveMoveDestination::Outcome::kRunning: return std::nullopt;
    case LiveMoveDestination::Outcome::kCommitted:
      // The source has read Committed (the destination signals after its
      // linger): from here on this is an ordinary worker with a running VM.
      incoming_.reset();
      base::LogInfo("incoming move " + args_.migration_id + ": the vm runs here now");
      return std::nullopt;
    case LiveMoveDestination::Outcome::kFailed: {
      base::Error e = incoming_->error();
      incoming_.reset();
      return WorkerExit("failed", std::string(base::CodeName(e.code())), e.message());
    }
  }
  return std::nullopt;
}

void VmWorker::AbortIncoming(const std::string& reason) {
  if (!incoming_) return;
  incoming_->Abort(reason);
  incoming_.reset();
}

}  // namespace appliance
