// StorageMoveService: storage-move jobs in ferryd (see storage_move_service.h).
#include "daemon/storage_move_service.h"

#include <unistd.h>

#include "base/clock.h"
#include "base/fd.h"
#include "base/log.h"
#include "daemon/runtime_record.h"
#include "ipc/worker_protocol.h"
#include "job_table.h"
#include "plan/storage_move_plan.h"

namespace appliance {

using nlohmann::json;

namespace {

// Consecutive failed status calls to a worker that still runs before the job
// gives up (a worker busy with a long request answers late).
constexpr int kMaxMissedPolls = 40;

MoveStatus Failed(const std::string& job_id, const std::string& destination, const base::Error& e) {
  MoveStatus s;
  s.job_id = job_id;
  s.destination = destination;
  s.phase = e.code() == base::Code::kCancelled ? MovePhase::kCancelled : MovePhase::kFailed;
  s.error_code = std::string(base::CodeName(e.code()));
  s.error = e.message();
  return s;
}

}  // namespace

json MoveJobToJson(const MoveJobRecord& job) {
  json j = MoveStatusToJson(job.status);
  j.erase("job_id");
  j["id"] = job.id;
  j["vm"] = job.vm;
  j["kind"] = job.kind;
  j["destination"] = job.destination;
  j["started_unix_ms"] = job.started_unix_ms;
  j["ended_unix_ms"] = job.ended_unix_ms;
  int64_t end = job.ended_unix_ms != 0 ? job.ended_unix_ms : UnixMillisNow();
  j["elapsed_seconds"] = double(end - job.started_unix_ms) / 1000.0;
  j["cleaned_up"] = job.cleaned_up;
  j["kept_sources"] = json::array();
  for (const KeptSource& k : job.kept)
    j["kept_sources"].push_back({{"path", k.path}, {"used_by", k.used_by}});
  if (!j.contains("error")) j["error"] = nullptr;
  return j;
}

base::Result<MoveJobRecord> MoveJobFromJson(const json& j) {
  if (!j.is_object() || !j.contains("id") || !j["id"].is_string())
    return base::Error(base::Code::kDataLoss, "job record without an id");
  MoveJobRecord r;
  r.id = j["id"].get<std::string>();
  r.vm = j.value("vm", "");
  r.kind = j.value("kind", "");
  r.destination = j.value("destination", "");
  r.started_unix_ms = j.value("started_unix_ms", int64_t(0));
  r.ended_unix_ms = j.value("ended_unix_ms", int64_t(0));
  if (j.contains("cleaned_up") && j["cleaned_up"].is_array()) {
    for (const auto& p : j["cleaned_up"]) {
      if (p.is_string()) r.cleaned_up.push_back(p.get<std::string>());
    }
  }
  if (j.contains("kept_sources") && j["kept_sources"].is_array()) {
    for (const auto& k : j["kept_sources"]) {
      if (k.is_object()) r.kept.push_back({k.value("path", ""), k.value("used_by", "")});
    }
  }
  json status = j;
  status["job_id"] = r.id;
  ASSIGN_OR_RETURN(r.status, MoveStatusFromJson(status));
  return r;
}

StorageMoveService::StorageMoveService(VmService& vms, Options options)
    : vms_(vms),
      options_(std::move(options)),
      jobs_(std::make_unique<JobTable<Job>>(options_.jobs_dir, options_.history, MoveJobToJson,
                                            MoveJobFromJson)) {}

base::Result<std::unique_ptr<StorageMoveService>> StorageMoveService::Open(VmService& vms,
                                                                           Options options) {
  std::unique_ptr<StorageMoveService> service(new StorageMoveService(vms, std::move(options)));
  // A job that was running when ferryd stopped. A live move's worker aborts
  // once nobody polls it (the VM stays on its source files); an offline copy
  // died with ferryd and never touched the sources.
  RETURN_IF_ERROR(service->jobs_->Load([](MoveJobRecord& record) {
    record.status.phase = MovePhase::kFailed;
    record.status.error_code = "aborted";
    record.status.error =
        "interrupted: ferryd stopped during the move; the vm keeps its source files; start the "
        "move again "
        "(a live move resumes from the worker's bitmaps)";
    return false;
  }));
  return service;
}

StorageMoveService::~StorageMoveService() { jobs_->StopAndJoin(); }

base::Result<json> StorageMoveService::Start(const std::string& vm, const std::string& destination,
                                             uint64_t max_bytes_per_second) {
  if (destination.empty() || destination[0] != '/')
    return base::Error(base::Code::kInvalidArgument,
                       "destination_storage_path must be absolute, not \"" + destination + "\"");
  ASSIGN_OR_RETURN(std::shared_ptr<Job> job, Reserve(vm, destination));
  auto drop = [&](const base::Error& e) {
    jobs_->Remove(job->record.id);
    return e;
  };
  auto target = vms_.moves().BeginStorageMove(vm);
  if (!target) return drop(target.error());
  const bool live = !target->control_socket.empty();
  auto live_plan = Prepare(*job, *target, max_bytes_per_second);
  if (!live_plan) {
    vms_.moves().EndStorageMove(vm, false);
    return drop(live_plan.error().Wrap("move storage of vm " + vm));
  }
  base::LogInfo("job " + job->record.id + ": " + job->record.kind + " storage move of vm " + vm +
                " to " + destination);
  json reply;
  {
    base::MutexLock lock(jobs_->mu());
    jobs_->Persist(job->record);
    reply = MoveJobToJson(job->record);
    if (live)
      job->thread =
          std::thread([this, job, t = *target, p = std::move(*live_plan)] { RunLive(job, t, p); });
    else
      job->thread = std::thread([this, job, t = *target] { RunOffline(job, t); });
  }
  return reply;
}

base::Result<std::shared_ptr<StorageMoveService::Job>> StorageMoveService::Reserve(
    const std::string& vm, const std::string& destination) {
  auto job = std::make_shared<Job>();
  base::MutexLock lock(jobs_->mu());
  std::vector<std::string> active = jobs_->Running();
  if (options_.max_storage_moves == 0)
    return base::Error(
        base::Code::kFailedPrecondition,
        "storage moves are disabled on this host (max_storage_moves = 0 in host.toml)");
  if (active.size() >= options_.max_storage_moves) {
    std::string list;
    for (const auto& a : active) list += (list.empty() ? "" : ", ") + a;
    return base::Error(
        base::Code::kResourceExhausted,
        "cannot move the storage of vm " + vm + ": " + std::to_string(active.size()) +
            " storage moves are running, the host allows " +
            std::to_string(options_.max_storage_moves) + " at once (max_storage_moves): " + list +
            "; wait for one to finish (ferry jobs)");
  }
  if (jobs_->stopping()) return base::Error(base::Code::kUnavailable, "ferryd is stopping");
  // Reserve the slot before the slow part, so two requests cannot both take
  // the last one.
  job->record.id = "move-" + config::NewUuid().substr(0, 8);
  job->record.vm = vm;
  job->record.destination = destination;
  job->record.started_unix_ms = UnixMillisNow();
  job->record.status.job_id = job->record.id;
  job->record.status.destination = destination;
  jobs_->Add(job);
  return job;
}

base::Result<StorageMovePlan> StorageMoveService::Prepare(Job& job, const MoveTarget& target,
                                                          uint64_t max_bytes_per_second) {
  const bool live = !target.control_socket.empty();
  const std::string& destination = job.record.destination;
  // A live move's sources are removed by this job (RemoveSources), so it
  // plans the move too: the same definition the worker reads from vm.toml
  // (checkpoints are refused while the move runs), the same files.
  StorageMovePlan live_plan;
  if (live) {
    ASSIGN_OR_RETURN(live_plan, PlanStorageMove(target.definition, target.vm_dir, destination));
  }
  {
    base::MutexLock lock(jobs_->mu());
    job.record.kind = live ? "live" : "offline";
  }
  if (live) {
    json action = {{"action", "start"},
                   {"job_id", job.record.id},
                   {"destination", destination},
                   {"max_bytes_per_second", max_bytes_per_second}};
    WorkerRequest request;
    request.op = WorkerOp::kMove;
    request.move = action.dump();
    auto reply = CallWorker(target.control_socket, request, options_.worker_call_timeout_ms);
    if (!reply) return reply.error();
  } else {
    // Checked here so a bad destination is the request's error, not a job's.
    RETURN_IF_ERROR(PrepareDestination(destination));
  }
  return live_plan;
}

void StorageMoveService::Update(Job& job, const MoveStatus& status) {
  base::MutexLock lock(jobs_->mu());
  job.record.status = status;
  job.record.status.job_id = job.record.id;
}

void StorageMoveService::Finish(Job& job, const MoveStatus& status,
                                std::vector<std::string> cleaned_up, std::vector<KeptSource> kept) {
  base::MutexLock lock(jobs_->mu());
  job.record.status = status;
  job.record.status.job_id = job.record.id;
  job.record.ended_unix_ms = UnixMillisNow();
  job.record.cleaned_up = std::move(cleaned_up);
  job.record.kept = std::move(kept);
  jobs_->RecordFinished(job.record);
  base::LogInfo("job " + job.record.id + ": " + std::string(ToString(status.phase)) +
                (status.error.empty() ? "" : ": " + status.error));
}

std::vector<KeptSource> StorageMoveService::RemoveSources(const std::string& job_id,
                                                          const StorageMovePlan& plan) {
  auto kept = RemoveMoveSources(plan, vms_.moves().FilesUsedByOtherVms(plan.vm_name));
  if (!kept) {
    base::LogWarning("job " + job_id + ": " + kept.error().ToString());
    return {};
  }
  for (const KeptSource& k : *kept)
    base::LogInfo("job " + job_id + ": kept source " + k.path + " (used by vm " + k.used_by + ")");
  return std::move(*kept);
}

void StorageMoveService::RunLive(std::shared_ptr<Job> job, VmService::MoveTarget target,
                                 StorageMovePlan plan) {
  base::SetThreadName("move-job");
  const std::string& vm = job->record.vm;
  int missed = 0;
  WorkerRequest request;
  request.op = WorkerOp::kMove;
  request.move = json{{"action", "status"}}.dump();
  for (;;) {
    if (jobs_->WaitStopping(options_.poll_interval_ms)) return;  // the worker's lease ends the move
    auto reply = CallWorker(target.control_socket, request, options_.worker_call_timeout_ms);
    std::optional<MoveStatus> status;
    if (reply && !reply->move.empty()) {
      auto parsed = MoveStatusFromJson(json::parse(reply->move, nullptr, false));
      if (parsed) status = *parsed;
    }
    if (!status) {
      auto state = vms_.moves().CurrentState(vm);
      bool worker_gone = !state || !HasWorker(*state);
      if (!worker_gone && ++missed < kMaxMissedPolls) continue;
      std::string why = worker_gone
                            ? "the vm's worker exited during the move (vm " + vm + " is " +
                                  (state ? std::string(ToString(*state)) : "gone") +
                                  "); its source files are intact"
                            : "the worker stopped answering: " +
                                  (reply ? std::string("no move status") : reply.error().message());
      // The dirty tracking died with the worker: nothing at the destination
      // can be resumed, so it goes — except what the VM's vm.toml (the
      // move's commit point) names: a worker that died after committing has
      // made the destination files the VM's disks, and the guest may have
      // written to them since the switch. Reloading vm.toml makes the next
      // start use whichever files it names.
      vms_.moves().EndStorageMove(vm, /*reload=*/true);
      std::set<std::string> in_use;
      if (auto def = config::LoadVmDefinition(target.vm_dir + "/vm.toml"); def) {
        for (std::string& f : FilesOfVm(*def, target.vm_dir)) in_use.insert(std::move(f));
      } else {
        base::LogWarning("job " + job->record.id + ": " + def.error().ToString() +
                         "; keeping every destination file");
      }
      StorageMovePlan marker_plan;
      marker_plan.vm_name = vm;
      marker_plan.destination = job->record.destination;
      std::vector<std::string> cleaned;
      if (worker_gone && !in_use.empty())
        cleaned = RemoveMoveDestinationByMarker(MoveMarkerPath(marker_plan), in_use);
      Finish(
          *job,
          Failed(job->record.id, job->record.destination, base::Error(base::Code::kAborted, why)),
          std::move(cleaned));
      return;
    }
    missed = 0;
    if (!IsTerminal(status->phase)) {
      Update(*job, *status);
      continue;
    }
    const bool completed = status->phase == MovePhase::kCompleted;
    // The worker committed and left its sources: ferryd removes them.
    std::vector<KeptSource> kept =
        completed ? RemoveSources(job->record.id, plan) : std::vector<KeptSource>{};
    vms_.moves().EndStorageMove(vm, completed);
    Finish(*job, *status, {}, std::move(kept));
    return;
  }
}

void StorageMoveService::RunOffline(std::shared_ptr<Job> job, VmService::MoveTarget target) {
  base::SetThreadName("move-job");
  const std::string vm = job->record.vm;
  const std::string dest = job->record.destination;
  const uint64_t start_ns = base::MonotonicNanos();
  auto fail = [&](const base::Error& e) {
    vms_.moves().EndStorageMove(vm, false);
    Finish(*job, Failed(job->record.id, dest, e));
  };
  auto plan = PlanStorageMove(target.definition, target.vm_dir, dest);
  if (!plan) return fail(plan.error().Wrap("move storage of vm " + vm));
  MoveStatus s;
  s.job_id = job->record.id;
  s.destination = plan->destination;
  s.phase = MovePhase::kCopyingLayers;
  s.bytes_total = plan->bytes_total;
  s.bytes_remaining = plan->bytes_total;
  Update(*job, s);
  if (auto st = WriteMoveMarker(*plan, "offline copy"); !st)
    return fail(st.error().Wrap("destination " + dest));
  auto copied = CopyStorageOffline(*plan, -1, [&](uint64_t done, uint64_t total) {
    MoveStatus p = s;
    p.bytes_done = done;
    p.bytes_remaining = total > done ? total - done : 0;
    double secs = double(base::MonotonicNanos() - start_ns) / 1e9;
    p.bytes_per_second = secs > 0 ? double(done) / secs : 0;
    if (p.bytes_per_second > 0) p.eta_seconds = double(p.bytes_remaining) / p.bytes_per_second;
    Update(*job, p);
  });
  if (!copied) {
    ::unlink(MoveMarkerPath(*plan).c_str());
    return fail(copied.error().Wrap("move storage of vm " + vm));
  }
  s.phase = MovePhase::kSwitching;
  Update(*job, s);
  if (auto st = vms_.moves().CommitMovedDefinition(vm, plan->moved_definition); !st) {
    RemoveMoveDestination(*plan);
    return fail(st.error());
  }
  std::vector<KeptSource> kept = RemoveSources(job->record.id, *plan);
  // A copy of the definition beside the moved files, for an admin; the
  // move has committed without it, so a failure is only worth a warning.
  if (auto st = base::WriteFileAtomically(plan->destination + "/" + vm + ".vm.toml",
                                          config::FormatVmDefinition(plan->moved_definition));
      !st)
    base::LogWarning("job " + job->record.id + ": " + st.error().ToString());
  ::unlink(MoveMarkerPath(*plan).c_str());
  vms_.moves().EndStorageMove(vm, true);
  s.phase = MovePhase::kCompleted;
  s.bytes_done = plan->bytes_total;
  s.bytes_remaining = 0;
  s.eta_seconds = 0;
  double secs = double(base::MonotonicNanos() - start_ns) / 1e9;
  s.bytes_per_second = secs > 0 ? double(plan->bytes_total) / secs : 0;
  for (const auto& d : plan->disks) s.new_paths.push_back(d.top.dest);
  Finish(*job, s, {}, std::move(kept));
}

base::Result<json> StorageMoveService::List() { return jobs_->List(); }

base::Result<json> StorageMoveService::Get(const std::string& id) { return jobs_->Get(id); }

}  // namespace appliance
