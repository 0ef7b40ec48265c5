// StorageMoveService: ferryd's storage-move jobs (`ferry move-storage`,
// POST /v1/vms/{name}/move-storage, GET /v1/jobs). One job per move:
//   - a running or paused VM moves live: the worker runs the mirror and the
//     switch (StorageMover); a job thread polls it ("move" status request,
//     which also keeps the worker's lease alive) and mirrors its progress;
//   - a VM without a worker (stopped, crashed, powered off) is copied by the
//     job thread itself (CopyStorageOffline), then its vm.toml is rewritten.
// Either way ferryd, not the worker, removes the sources once the move has
// committed: only ferryd sees the inventory, and a source another VM still
// uses (a base image under both VMs' overlays) must stay. It is listed as
// kept instead. Deciding at removal time, rather than passing a list to the
// worker at the start, also covers a VM created on that base mid-move.
// At most host.max_storage_moves jobs run at once; one more is refused with
// kResourceExhausted. Finished jobs are kept (in memory and as
// <storage_root>/jobs/<id>.json) so `ferry jobs` lists past moves; a job
// that was running when ferryd stopped is listed as failed ("interrupted").
//
// If the worker dies during a live move, the job fails and removes the
// destination files the worker listed in its marker (they cannot be resumed:
// the dirty tracking died with the worker). A live move that fails while the
// worker lives (a full destination, say) keeps its marked partial files, so
// the same move started again resumes from the worker's bitmaps.
//
// Threads: public methods are called from API threads; one thread per
// running job. The destructor stops the job threads (a live move's worker
// aborts on its own once nobody polls it).
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "config/host_settings.h"
#include "daemon/vm_service.h"
#include "ipc/storage_move_status.h"

namespace appliance {

template <typename Job>
class JobTable;  // job_table.h

struct MoveJobRecord {
  std::string id;
  std::string vm;
  std::string kind;  // "live" or "offline"
  std::string destination;
  MoveStatus status;  // phase, bytes, rate, error, new paths
  int64_t started_unix_ms = 0;
  int64_t ended_unix_ms = 0;            // 0 while running
  std::vector<std::string> cleaned_up;  // destination files removed after a failure
  std::vector<KeptSource> kept;         // sources left in place: another VM uses them
};
nlohmann::json MoveJobToJson(const MoveJobRecord& job);
base::Result<MoveJobRecord> MoveJobFromJson(const nlohmann::json& j);

class StorageMoveService {
 public:
  struct Options {
    uint32_t max_storage_moves = 2;
    std::string jobs_dir;  // <storage_root>/jobs
    int poll_interval_ms = 250;
    int worker_call_timeout_ms = 5000;
    size_t history = 100;  // finished jobs kept
  };
  // vms must outlive the service.
  static base::Result<std::unique_ptr<StorageMoveService>> Open(VmService& vms, Options options);
  ~StorageMoveService();

  // Starts a move; returns the job (202 in the API).
  base::Result<nlohmann::json> Start(const std::string& vm, const std::string& destination,
                                     uint64_t max_bytes_per_second);
  base::Result<nlohmann::json> List();
  base::Result<nlohmann::json> Get(const std::string& id);

 private:
  struct Job {
    MoveJobRecord record;  // guarded by jobs_->mu()
    std::thread thread;
  };
  StorageMoveService(VmService& vms, Options options);
  // Start's steps: a slot in the job table (refused over the limit), then
  // the move's preparation — for a live move its plan and the worker's
  // start, for an offline one the destination's check.
  base::Result<std::shared_ptr<Job>> Reserve(const std::string& vm, const std::string& destination);
  base::Result<StorageMovePlan> Prepare(Job& job, const MoveTarget& target,
                                        uint64_t max_bytes_per_second);
  void RunLive(std::shared_ptr<Job> job, VmService::MoveTarget target, StorageMovePlan plan);
  void RunOffline(std::shared_ptr<Job> job, VmService::MoveTarget target);
  void Update(Job& job, const MoveStatus& status);
  void Finish(Job& job, const MoveStatus& status, std::vector<std::string> cleaned_up = {},
              std::vector<KeptSource> kept = {});
  // After the commit: removes the plan's sources except the files other VMs use.
  std::vector<KeptSource> RemoveSources(const std::string& job_id, const StorageMovePlan& plan);

  VmService& vms_;
  Options options_;
  std::unique_ptr<JobTable<Job>> jobs_;  // records under options_.jobs_dir
};

}  // namespace appliance
