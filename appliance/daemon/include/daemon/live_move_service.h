// LiveMoveService: the source ferryd's side of a shared-nothing live move
// (`ferry move-vm`, POST /v1/vms/{name}/move-vm; docs/live_move.md "Source
// ferryd"). One job per move:
//   1. Start checks this host (outgoing moves enabled, a slot under
//      migration.max_live_moves, --include-storage, an absolute destination,
//      a running or paused VM not already moving), plans the destination
//      layout (PlanStorageMove: the move-storage layout rules), and sends
//      Prepare to the destination ferryd (CallPeer). The destination's
//      refusals come back as the request's error, code preserved. Until the
//      job runs, its slot (MoveSlot, move_slot.h) and the VM's departure
//      record are given back on every failure.
//   2. It tells the VM's worker to start (worker op "live-move") and returns
//      the job (202). The job thread then polls the worker every 250 ms: the
//      poll mirrors the worker's LiveMoveStatus into the job and is also the
//      worker's lease (a worker nobody polls aborts a move that has not
//      reached switchover).
//   3. Completed: the worker exits with exit record state "moved" and
//      VmService drops the VM from the inventory and deletes its files
//      (FinishMovedVm; files another VM uses stay and are listed as kept).
//      Failed: the VM keeps running here; the job sends Abort to the
//      destination ferryd (best effort) so it removes what it received.
//      In doubt (the device state was sent, the destination is unreachable):
//      the VM stays paused here, held by its departure record, the job ends
//      in doubt naming the destination, and nothing is aborted: the
//      destination may have committed.
//   A worker that dies mid-move: the job asks the destination whether it
//   committed (then the VM left: finish as completed); "aborted" fails the
//   job ("the vm's worker died during the move") and sends Abort; no answer
//   leaves the move in doubt.
// Finished jobs are kept in memory and under <storage_root>/live-moves/
// (not jobs/, whose records StorageMoveService parses), so GET /v1/jobs lists
// them next to the storage moves (kind "live-vm"). A job that was running
// when ferryd stopped is taken up again if its VM still holds the move's
// departure record (Reattach) or is gone (SettleVanished); otherwise it is
// listed as failed ("interrupted"), or in doubt if its record says so.
//
// Threads: public methods are called from API threads; one thread per
// running job. The destructor stops the job threads without touching the
// workers (a worker whose lease lapses aborts a move before switchover, and
// resolves one after it on its own).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "config/host_settings.h"
#include "daemon/admin_credentials.h"
#include "daemon/vm_service.h"
#include "peer/peer_client.h"
#include "plan/storage_move_plan.h"
#include "protocol/live_move_types.h"

namespace appliance {

template <typename Job>
class JobTable;  // job_table.h

// What a `ferry move-vm` asks for.
struct LiveMoveArgs {
  std::string vm;
  std::string host;         // destination ferryd: "10.0.0.2", "10.0.0.2:7430", "[fd00::2]:7430"
  std::string destination;  // --destination-storage-path at the destination (absolute)
  bool include_storage = false;  // must be true: the hosts share no storage
  uint32_t streams = 4;          // data streams, 1..64
  uint64_t bandwidth_limit = 0;  // bytes/s, memory and disk together; 0 none
  uint32_t downtime_ms = 0;      // 0: the worker's default
  uint32_t time_limit_s = 600;   // the move fails (the VM stays here) after this
  // The admin's, from the request (ApiCaller): required unless
  // migration.authentication is "certificate".
  std::shared_ptr<const AdminCredentials> credentials;
  std::string admin = "root";  // who asked, for the log
};

struct LiveMoveJobRecord {
  std::string id;  // "live-" + the first 8 hex digits of the migration id
  std::string vm;
  std::string host;         // as given
  std::string destination;  // storage path at the destination
  std::string migration_id;
  // The certificate the destination presented at Prepare: every later call
  // about this move (Status, Abort) and the worker's data streams require it.
  std::string destination_fingerprint;
  uint32_t streams = 4;
  uint64_t bandwidth_limit = 0;
  uint32_t downtime_ms = 0;  // requested (0: default)
  LiveMoveStatus status;     // progress while running, the report at the end
  int64_t started_unix_ms = 0;
  int64_t ended_unix_ms = 0;         // 0 while running
  std::vector<std::string> removed;  // source files deleted after the commit
  std::vector<KeptSource> kept;      // source files left: another VM uses them
};
// The API's job JSON: {"id","vm","kind":"live-vm","host","destination",
// "phase", "bytes_total","bytes_done","bytes_per_second","eta_seconds" (the
// fields `ferry jobs` tabulates for every kind), "live_move": LiveMoveStatus,
// "removed_sources", "kept_sources", "error": null | {"code","message"}, ...}.
nlohmann::json LiveMoveJobToJson(const LiveMoveJobRecord& job);
base::Result<LiveMoveJobRecord> LiveMoveJobFromJson(const nlohmann::json& j);

class LiveMoveService {
 public:
  struct Options {
    config::HostSettings host;            // migration.* and listen_addresses
    std::string jobs_dir;                 // <storage_root>/live-moves
    std::string kvm_device = "/dev/kvm";  // for the CPU description sent in Prepare
    // ferryd's TLS identity toward destinations; null: no move can start.
    std::shared_ptr<const transport::TlsContext> tls;
    int poll_interval_ms = 250;
    int worker_call_timeout_ms = 5000;
    int prepare_timeout_ms = 60000;  // the destination launches its incoming worker
    int peer_timeout_ms = 10000;     // Status and Abort
    size_t history = 100;            // finished jobs kept
  };
  // vms must outlive the service.
  static base::Result<std::unique_ptr<LiveMoveService>> Open(VmService& vms, Options options);
  ~LiveMoveService();

  // Starts a move; returns the job (202 in the API). Errors: kFailedPrecondition
  // (disabled, wrong VM state, no --include-storage), kInvalidArgument (bad
  // host, destination, streams), kResourceExhausted (no slot), kUnimplemented
  // (performance = "smb"), and the destination's refusal of Prepare.
  base::Result<nlohmann::json> Start(const LiveMoveArgs& args);
  base::Result<nlohmann::json> List();  // {"jobs":[...]} oldest first
  base::Result<nlohmann::json> Get(const std::string& id);
  bool Owns(const std::string& job_id) const;  // the job id is a live move's

 private:
  struct Job {
    LiveMoveJobRecord record;  // guarded by jobs_->mu()
    PeerEndpoint peer;         // immutable after Start
    std::string control_socket;
    std::thread thread;
  };
  // What Start learned on its way, for Launch.
  struct StartedMove {
    PrepareRequest prepare;                      // as the destination accepted it
    PrepareReply reply;                          // the incoming worker's data address
    std::optional<LiveMoveStatus> first_status;  // the worker's answer to the start, if it came
  };
  LiveMoveService(VmService& vms, Options options);
  // Start's steps, in order. The job holds its slot and its VM's departure
  // record meanwhile; Start gives both back if a step fails.
  // A new job's record (a fresh migration id; phase preparing).
  static std::shared_ptr<Job> NewJob(const LiveMoveArgs& args, const PeerEndpoint& peer);
  // PlanPrepare, PrepareAtDestination, then StartWorker.
  base::Result<StartedMove> PrepareAndStart(Job& job, const VmService::MoveTarget& target,
                                            const LiveMoveArgs& args);
  // The destination layout (PlanStorageMove) and the Prepare request for it.
  base::Result<PrepareRequest> PlanPrepare(const Job& job, const VmService::MoveTarget& target,
                                           const LiveMoveArgs& args) const;
  // Sends Prepare; a reply the source cannot use is aborted there.
  base::Result<PrepareReply> PrepareAtDestination(Job& job, const PrepareRequest& prepare,
                                                  const AdminCredentials* credentials);
  // Tells the worker to start. A lost answer is no failure unless the
  // worker's status shows the move never began (then the destination aborts).
  base::Result<std::optional<LiveMoveStatus>> StartWorker(const Job& job,
                                                          const LiveMoveRequest& request);
  // Records the first status, writes the job's record and starts Run.
  nlohmann::json Launch(const std::shared_ptr<Job>& job, const StartedMove& started);
  void Run(std::shared_ptr<Job> job);
  // A job that was running when ferryd stopped, whose VM still holds the
  // move's departure record: polls the worker again (renewing its lease, so
  // a move that outlived ferryd's restart goes on) or, if the worker is
  // gone, settles the move with the destination as Run does.
  void Reattach(std::shared_ptr<Job> job);
  // A job taken up whose VM is no longer here at all (removed after the
  // commit by a ferryd that stopped before it finished the job): the
  // destination's Status says how the move ended.
  void SettleVanished(Job& job);
  // The resolver thread: puts departures no job watches to their destination
  // at start and then periodically (VmService::ResolveDeparture).
  void ResolveUnwatched();
  // The worker is gone: moved (VmService saw the "moved" exit) or died.
  void OnWorkerGone(Job& job, const std::string& why);
  // The worker lives but does not answer (or does not exit after the
  // commit): the destination's Status decides between moved and failed.
  // completed_seen: the worker itself reported the destination's commit.
  void OnWorkerSilent(Job& job, const std::string& why, bool completed_seen);
  // The destination's verdict; an error when it cannot be asked (then
  // nobody here may decide: the move is in doubt).
  base::Result<RemoteMoveState> DestinationVerdict(const Job& job);
  // The worker is gone or silent and the destination cannot say whether it
  // committed: the VM stays blocked here (no start, resume or delete) and
  // the job says whom to ask.
  void FinishInDoubt(Job& job, const std::string& why, const base::Error& unreachable);
  // destination_answered: its Status already said committed (and so
  // adopted the VM there); otherwise FinishMoved asks.
  void FinishMoved(Job& job, const VmService::MovedVm& moved, bool destination_answered = false);
  void FinishFailed(Job& job, const base::Error& error);  // the VM stays here; Abort sent
  void Update(Job& job, const LiveMoveStatus& status);
  void Finish(Job& job, LiveMoveStatus status);
  void AbortAtDestination(const Job& job, const std::string& reason);

  VmService& vms_;
  Options options_;
  std::unique_ptr<JobTable<Job>> jobs_;  // records under options_.jobs_dir
  std::thread resolver_;                 // ResolveUnwatched; joined after jobs_ stop
};

// PrepareRequest for moving `definition` as planned (everything but the CPU
// description and the migration id, which the caller fills).
PrepareRequest BuildPrepareRequest(const config::VmDefinition& definition,
                                   const StorageMovePlan& plan, uint32_t streams,
                                   config::PerformanceOption performance,
                                   const std::string& source_host);

}  // namespace appliance
