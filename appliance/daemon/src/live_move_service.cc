// LiveMoveService: live-move jobs in the source ferryd (see
// live_move_service.h). The pure parts (job JSON, Prepare request) are in
// live_move_job.cc.
#include "daemon/live_move_service.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <optional>

#include "base/clock.h"
#include "base/fd.h"
#include "base/log.h"
#include "common/unix_socket.h"
#include "daemon/departure_record.h"
#include "daemon/host_cpu.h"
#include "daemon/runtime_record.h"
#include "ipc/worker_protocol.h"
#include "job_table.h"
#include "move_slot.h"
#include "peer/peer_tls.h"

namespace appliance {

using nlohmann::json;

namespace {

// After the worker reported completed: how long its exit ("moved") may take.
constexpr uint64_t kMovedExitWaitNs = 15'000'000'000ull;
// A living worker that answers no status call for this long is given up on
// (its control thread answers within milliseconds even mid-switchover).
constexpr uint64_t kSilenceLimitNs = 20'000'000'000ull;
constexpr uint32_t kMaxStreams = 64;
// How often departures nobody watches are put to their destination again.
constexpr int kResolveIntervalMs = 30000;

WorkerRequest LiveMoveCall(const json& action) {
  WorkerRequest request;
  request.op = WorkerOp::kLiveMove;
  request.live_move = action.dump();
  return request;
}

// CallWorker with a bounded connect: a worker whose control loop is stuck
// stops accepting, and once its listen backlog is full a blocking connect
// would wait forever. Non-blocking, a full backlog is an immediate
// kUnavailable.
base::Result<WorkerReply> CallWorkerBounded(const std::string& socket_path,
                                            const WorkerRequest& request, int timeout_ms) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path)
    return base::Error(base::Code::kInvalidArgument, "socket path too long: " + socket_path);
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  base::Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return base::ErrnoError("socket(AF_UNIX)");
  int r;
  do {
    r = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  } while (r != 0 && errno == EINTR);
  if (r != 0) return base::ErrnoError("connect to " + socket_path);
  // Blocking again: ReadLine bounds the wait itself.
  if (::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK) != 0)
    return base::ErrnoError("fcntl " + socket_path);
  RETURN_IF_ERROR(WriteLine(fd.get(), EncodeRequest(request)));
  ASSIGN_OR_RETURN(std::string line,
                   ReadLine(fd.get(), kMaxWorkerLine, timeout_ms, "the worker's live-move status"));
  return DecodeReply(line);
}

// The live-move status a worker reply carries, if any.
std::optional<LiveMoveStatus> StatusOf(const WorkerReply& reply) {
  if (reply.live_move.empty()) return std::nullopt;
  auto parsed = LiveMoveStatusFromJson(json::parse(reply.live_move, nullptr, false));
  if (!parsed) return std::nullopt;
  return *parsed;
}

void SetError(LiveMoveStatus& s, const base::Error& e) {
  s.error_code = std::string(base::CodeName(e.code()));
  s.error = e.message();
}

// Whether the worker's answer to a live-move call shows that the move of
// migration_id never began there: it has no move at all, or only an earlier
// one (the status of its last move stays until a new start).
bool NeverBegan(const base::Result<WorkerReply>& reply, const std::string& migration_id) {
  if (!reply)
    return reply.error().code() == base::Code::kNotFound &&
           reply.error().message() == kNoLiveMoveStarted;
  auto status = StatusOf(*reply);
  return status && status->migration_id != migration_id;
}

// How an in-doubt move gets settled, for the messages that say so.
std::string ResolveHint(const std::string& vm) {
  return "`ferry vm resolve " + vm + "` asks it again (ferryd also does, every " +
         std::to_string(kResolveIntervalMs / 1000) + " s)";
}

// Start's checks of the request against this host, before anything is taken.
// Why a move cannot start without the admin's credentials, and what to do:
// as Hyper-V says "no credentials are available in the security package"
// when CredSSP has no log-on at the source.
base::Error NoCredentials(config::AuthenticationType mode) {
  if (mode == config::AuthenticationType::kKerberos)
    return base::Error(base::Code::kPermissionDenied,
                       "no Kerberos credentials came with this request "
                       "(migration.authentication = \"kerberos\"): run kinit as an admin named "
                       "in migration.admins and try again (ferry sends a ticket for this host's "
                       "service, which it delegates to the destination)");
  return base::Error(base::Code::kPermissionDenied,
                     "no credentials are available for delegation (migration.authentication = "
                     "\"credssp\"): log on at this host first (ferry logon USER), then start "
                     "the move here with ferry --as USER; or use Kerberos with constrained "
                     "delegation, which needs no log-on at the source");
}

base::Status CheckStartArgs(const LiveMoveArgs& args, const config::HostSettings& host) {
  if (!host.outgoing_enabled)
    return base::Error(
        base::Code::kFailedPrecondition,
        "outgoing live moves are disabled on this host (host.toml migration.outgoing_enabled)");
  if (host.authentication != config::AuthenticationType::kCertificate &&
      args.credentials == nullptr)
    return NoCredentials(host.authentication);
  if (!args.include_storage)
    return base::Error(base::Code::kFailedPrecondition,
                       "--include-storage is required: the hosts share no storage");
  if (args.destination.empty() || args.destination[0] != '/')
    return base::Error(
        base::Code::kInvalidArgument,
        "destination_storage_path must be absolute, not \"" + args.destination + "\"");
  if (args.time_limit_s == 0)
    return base::Error(base::Code::kInvalidArgument, "time_limit_s must be at least 1 second");
  if (args.streams < 1 || args.streams > kMaxStreams)
    return base::Error(base::Code::kInvalidArgument, "streams must be from 1 to " +
                                                         std::to_string(kMaxStreams) + ", not " +
                                                         std::to_string(args.streams));
  return base::Ok();
}

// The departure record BeginLiveMove writes for the job's move.
DepartureRecord NewDeparture(const LiveMoveJobRecord& job, const PeerEndpoint& peer) {
  DepartureRecord departure;
  departure.migration_id = job.migration_id;
  departure.job = job.id;
  departure.host = peer.ToString();
  departure.destination = job.destination;
  departure.started_unix_ms = job.started_unix_ms;
  return departure;
}

// The VM's departure record (BeginLiveMove), held by a move being started:
// ended (EndLiveMove: the VM is free again) on every early return of Start,
// kept once the job's thread runs, which ends it when the move ends. `vms`
// must outlive the hold.
class DepartureHold {
 public:
  DepartureHold(VmService& vms, std::string vm, std::string migration_id)
      : vms_(vms), vm_(std::move(vm)), migration_id_(std::move(migration_id)) {}
  DepartureHold(const DepartureHold&) = delete;
  DepartureHold& operator=(const DepartureHold&) = delete;
  ~DepartureHold() {
    if (held_) vms_.moves().EndLiveMove(vm_, migration_id_);
  }
  void Commit() { held_ = false; }

 private:
  VmService& vms_;
  const std::string vm_;
  const std::string migration_id_;
  bool held_ = true;
};

// What the source worker is told to do, once the destination accepted.
LiveMoveRequest BuildLiveMoveRequest(const PrepareRequest& prepare, const PeerEndpoint& peer,
                                     const PrepareReply& reply, const LiveMoveArgs& args,
                                     const config::HostSettings& host) {
  LiveMoveRequest request;
  request.prepare = prepare;
  request.control_host = peer.host;
  request.control_port = peer.port;
  request.data_host = reply.data_host;
  request.data_port = reply.data_port;
  request.source_host = peer.source_host;
  request.streams = args.streams;
  request.compression = host.performance == config::PerformanceOption::kCompression;
  request.bandwidth_limit = args.bandwidth_limit;
  request.downtime_ms = args.downtime_ms;
  request.time_limit_s = args.time_limit_s;
  // The worker's data streams and Status queries must reach the host that
  // accepted the Prepare, and no other.
  request.tls = HostPeerTrust(host, peer.expected_fingerprint);
  return request;
}

LiveMoveStatus LastStatus(base::Mutex& mu, const LiveMoveJobRecord& record) {
  base::MutexLock lock(mu);
  return record.status;
}

}  // namespace

LiveMoveService::LiveMoveService(VmService& vms, Options options)
    : vms_(vms),
      options_(std::move(options)),
      jobs_(std::make_unique<JobTable<Job>>(options_.jobs_dir, options_.history, LiveMoveJobToJson,
                                            LiveMoveJobFromJson)) {}

base::Result<std::unique_ptr<LiveMoveService>> LiveMoveService::Open(VmService& vms,
                                                                     Options options) {
  std::unique_ptr<LiveMoveService> service(new LiveMoveService(vms, std::move(options)));
  // A job that was running when ferryd stopped. VmService::Open has already
  // removed the VM if its worker exited "moved" meanwhile; a VM that still
  // holds the move's departure record gets its job back (Reattach).
  RETURN_IF_ERROR(service->jobs_->Load([&vms](LiveMoveJobRecord& record) {
    LiveMoveStatus& s = record.status;
    if (auto moved = vms.moves().MovedAway(record.vm)) {
      s.phase = LiveMovePhase::kCompleted;
      record.removed = moved->removed;
      record.kept = moved->kept;
      return false;
    }
    for (const VmService::Departure& d : vms.departures().List()) {
      if (d.vm != record.vm || d.record.migration_id != record.migration_id) continue;
      if (d.record.state == DepartureState::kMoving) return true;
      // Declared in doubt just before ferryd stopped: the job says so too.
      s.phase = LiveMovePhase::kInDoubt;
      s.error_code = std::string(base::CodeName(base::Code::kUnavailable));
      s.error = d.record.message;
      return false;
    }
    // Gone without a word: ferryd removed it (the move committed) and
    // stopped before it recorded the job's end. The destination knows.
    if (!vms.incoming().HasVm(record.vm)) return true;
    s.phase = LiveMovePhase::kFailed;
    s.error_code = std::string(base::CodeName(base::Code::kAborted));
    s.error = "interrupted: ferryd stopped before the move began or after it ended here; vm " +
              record.vm + " did not leave this host (ferry vm list shows it)";
    return false;
  }));
  std::vector<std::shared_ptr<Job>> running;
  {
    base::MutexLock lock(service->jobs_->mu());
    running = service->jobs_->RunningJobs();
  }
  for (auto& job : running) service->Reattach(job);
  LiveMoveService* self = service.get();
  service->resolver_ = std::thread([self] { self->ResolveUnwatched(); });
  return service;
}

void LiveMoveService::Reattach(std::shared_ptr<Job> job) {
  const LiveMoveJobRecord& r = job->record;
  auto peer = MigrationPeer(r.host, options_.host, options_.tls);
  if (peer) peer->expected_fingerprint = r.destination_fingerprint;
  if (peer && !vms_.incoming().HasVm(r.vm)) {
    job->peer = *peer;
    base::MutexLock lock(jobs_->mu());
    job->thread = std::thread([this, job] { SettleVanished(*job); });
    return;
  }
  auto target = vms_.departures().ReattachLiveMove(r.vm, r.migration_id);
  if (!peer || !target) {
    const base::Error e = !peer ? peer.error() : target.error();
    vms_.departures().MarkInDoubt(
        r.vm, r.migration_id,
        "ferryd restarted and could not take the move up again: " + e.message());
    LiveMoveStatus s = LastStatus(jobs_->mu(), r);
    s.phase = LiveMovePhase::kInDoubt;
    SetError(s, e.Wrap("take the move up again"));
    return Finish(*job, s);
  }
  job->peer = *peer;
  job->control_socket = target->control_socket;
  base::LogInfo("job " + r.id + ": live move of vm " + r.vm + " to " + job->peer.ToString() +
                " taken up again after a ferryd restart");
  base::MutexLock lock(jobs_->mu());
  job->thread = std::thread([this, job] { Run(job); });
}

void LiveMoveService::SettleVanished(Job& job) {
  base::SetThreadName("live-move-job");
  auto verdict = DestinationVerdict(job);
  if (verdict && *verdict == RemoteMoveState::kCommitted) {
    VmService::MovedVm moved;
    moved.name = job.record.vm;
    return FinishMoved(job, vms_.moves().MovedAway(job.record.vm).value_or(moved),
                       /*destination_answered=*/true);
  }
  LiveMoveStatus s = LastStatus(jobs_->mu(), job.record);
  s.phase = LiveMovePhase::kFailed;
  SetError(s,
           base::Error(base::Code::kNotFound,
                       "vm " + job.record.vm + " is no longer on this host, and the destination " +
                           job.peer.ToString() + " " +
                           (verdict ? "says the move is " + std::string(ToString(*verdict))
                                    : "cannot be asked (" + verdict.error().message() + ")")));
  Finish(job, s);
}

void LiveMoveService::ResolveUnwatched() {
  base::SetThreadName("live-resolver");
  // At start, then every kResolveIntervalMs: a departure no job watches (in
  // doubt, or left by a job that was lost) is settled as soon as its
  // destination answers. Until then the VM stays held.
  do {
    for (const VmService::Departure& d : vms_.departures().List()) {
      if (d.watched || jobs_->WaitStopping(0)) continue;
      auto settled = vms_.departures().SettleUnwatched(d.vm);
      if (settled && settled->kind != ResolveOutcome::Kind::kNone)
        base::LogInfo("vm " + d.vm + ": " + settled->message);
    }
  } while (!jobs_->WaitStopping(kResolveIntervalMs));
}

LiveMoveService::~LiveMoveService() {
  jobs_->StopAndJoin();
  if (resolver_.joinable()) resolver_.join();
}

bool LiveMoveService::Owns(const std::string& job_id) const { return jobs_->Contains(job_id); }

base::Result<json> LiveMoveService::Start(const LiveMoveArgs& args) {
  RETURN_IF_ERROR(CheckStartArgs(args, options_.host));
  ASSIGN_OR_RETURN(PeerEndpoint peer, MigrationPeer(args.host, options_.host, options_.tls));
  const std::string what = "move vm " + args.vm + " to " + peer.ToString();
  // Every early return from here gives back what was taken: the departure
  // record (DepartureHold), then the slot and the job's record (MoveSlot).
  ASSIGN_OR_RETURN(MoveSlot<Job> slot, MoveSlot<Job>::Acquire(*jobs_, NewJob(args, peer),
                                                              options_.host.max_live_moves, what));
  const std::shared_ptr<Job>& job = slot.job();
  ASSIGN_OR_RETURN(VmService::MoveTarget target,
                   vms_.moves().BeginLiveMove(args.vm, NewDeparture(job->record, peer)));
  DepartureHold departure(vms_, args.vm, job->record.migration_id);
  job->control_socket = target.control_socket;
  auto started = PrepareAndStart(*job, target, args);
  if (!started) return started.error().Wrap(what);
  json out = Launch(job, *started);
  // The job's thread runs: the slot and the departure record are its own.
  departure.Commit();
  slot.Commit();
  return out;
}

std::shared_ptr<LiveMoveService::Job> LiveMoveService::NewJob(const LiveMoveArgs& args,
                                                              const PeerEndpoint& peer) {
  auto job = std::make_shared<Job>();
  job->peer = peer;
  const std::string migration_id = NewMigrationId();
  LiveMoveJobRecord& r = job->record;
  r.id = "live-" + migration_id.substr(0, 8);
  r.vm = args.vm;
  r.host = args.host;
  r.destination = args.destination;
  r.migration_id = migration_id;
  r.streams = args.streams;
  r.bandwidth_limit = args.bandwidth_limit;
  r.downtime_ms = args.downtime_ms;
  r.started_unix_ms = UnixMillisNow();
  r.status.migration_id = migration_id;
  r.status.phase = LiveMovePhase::kPreparing;
  return job;
}

base::Result<LiveMoveService::StartedMove> LiveMoveService::PrepareAndStart(
    Job& job, const VmService::MoveTarget& target, const LiveMoveArgs& args) {
  StartedMove m;
  ASSIGN_OR_RETURN(m.prepare, PlanPrepare(job, target, args));
  ASSIGN_OR_RETURN(m.reply, PrepareAtDestination(job, m.prepare, args.credentials.get()));
  ASSIGN_OR_RETURN(
      m.first_status,
      StartWorker(job, BuildLiveMoveRequest(m.prepare, job.peer, m.reply, args, options_.host)));
  return m;
}

base::Result<PrepareRequest> LiveMoveService::PlanPrepare(const Job& job,
                                                          const VmService::MoveTarget& target,
                                                          const LiveMoveArgs& args) const {
  ASSIGN_OR_RETURN(StorageMovePlan plan,
                   PlanStorageMove(target.definition, target.vm_dir, args.destination));
  PrepareRequest prepare = BuildPrepareRequest(target.definition, plan, args.streams,
                                               options_.host.performance, job.peer.source_host);
  prepare.migration_id = job.record.migration_id;
  // The worker refuses to start the move if the VM is no longer in this
  // state (a pause or resume slipped in before it), and refuses pause and
  // resume while the move runs, so this holds to the end.
  prepare.paused = target.state == VmState::kPaused;
  if (auto cpu = ReadHostCpu(options_.kvm_device); cpu) {
    prepare.cpu_vendor = cpu->vendor;
    prepare.cpu_features = cpu->features;
  } else {
    // The destination then checks nothing about the CPU it cannot compare.
    base::LogWarning("job " + job.record.id +
                     ": no CPU description for Prepare: " + cpu.error().ToString());
  }
  return prepare;
}

base::Result<PrepareReply> LiveMoveService::PrepareAtDestination(
    Job& job, const PrepareRequest& prepare, const AdminCredentials* credentials) {
  std::string fingerprint;
  // The admin's proof, made for the destination this connection reached
  // and bound to it (none in certificate mode: the host's certificate is it).
  RequestAuthorizer authorize;
  if (credentials != nullptr) {
    authorize = [credentials](const transport::TlsPeer& peer) -> base::Result<json> {
      ASSIGN_OR_RETURN(MoveAuthorization authorization, credentials->Authorize(peer));
      return ToJson(authorization);
    };
  }
  ASSIGN_OR_RETURN(json prepared, CallPeer(job.peer, MoveFrame::kPrepare, ToJson(prepare),
                                           MoveFrame::kPrepareReply, options_.prepare_timeout_ms,
                                           &fingerprint, authorize));
  // Pinned from here on: Abort, Status and the worker's streams go to the
  // host that holds the move's slot and files, even if another trusted host
  // took over the address meanwhile.
  job.peer.expected_fingerprint = fingerprint;
  {
    base::MutexLock lock(jobs_->mu());
    job.record.destination_fingerprint = fingerprint;
  }
  // Durable before the worker may start: after a crash, only this host's
  // word may settle the move (VmDepartures::AskDestination).
  if (auto pinned =
          vms_.departures().PinDestination(job.record.vm, job.record.migration_id, fingerprint);
      !pinned) {
    AbortAtDestination(job, "the source could not record the destination's certificate");
    return pinned.error();
  }
  auto reply = PrepareReplyFromJson(prepared);
  if (!reply) {
    AbortAtDestination(job, "the source could not read the Prepare reply");
    return reply.error();
  }
  if (prepare.paused && !reply->keeps_paused) {
    // An older ferry ignores "paused" and would resume the guest there.
    AbortAtDestination(job, "the destination cannot keep a paused vm paused");
    return base::Error(base::Code::kFailedPrecondition,
                       "the destination " + job.peer.ToString() +
                           " does not keep a paused vm paused (an older ferry?): resume vm " +
                           job.record.vm + " first, or update the destination");
  }
  return *reply;
}

base::Result<std::optional<LiveMoveStatus>> LiveMoveService::StartWorker(
    const Job& job, const LiveMoveRequest& request) {
  auto started = CallWorker(job.control_socket,
                            LiveMoveCall({{"action", "start"}, {"request", ToJson(request)}}),
                            options_.worker_call_timeout_ms);
  if (started) return StatusOf(*started);
  // A start whose reply was lost may have begun (and may even reach its
  // switchover): only the worker's own status can say it did not. Unless it
  // says so, the job follows the move like any other and the departure
  // record stays until Run knows how it ended.
  auto check = CallWorkerBounded(job.control_socket, LiveMoveCall({{"action", "status"}}),
                                 options_.worker_call_timeout_ms);
  std::optional<LiveMoveStatus> now = check ? StatusOf(*check) : std::nullopt;
  if (NeverBegan(check, job.record.migration_id) || (now && now->phase == LiveMovePhase::kFailed)) {
    AbortAtDestination(job,
                       "the source worker did not start the move: " + started.error().message());
    return started.error();
  }
  base::LogWarning("job " + job.record.id + ": the worker's answer to the start was lost (" +
                   started.error().message() + "); following the move in case it began");
  return std::optional<LiveMoveStatus>();
}

json LiveMoveService::Launch(const std::shared_ptr<Job>& job, const StartedMove& started) {
  {
    base::MutexLock lock(jobs_->mu());
    LiveMoveStatus& s = job->record.status;
    s.memory_bytes = started.prepare.memory_bytes;
    s.disk_bytes = started.prepare.disk_bytes;
    if (started.first_status) s = *started.first_status;
  }
  const LiveMoveJobRecord& r = job->record;
  base::LogInfo("job " + r.id + ": live move of vm " + r.vm + " to " + job->peer.ToString() + " (" +
                r.destination + "), migration " + r.migration_id + ", data " +
                started.reply.data_host + ":" + std::to_string(started.reply.data_port));
  base::MutexLock lock(jobs_->mu());
  jobs_->Persist(job->record);
  json out = LiveMoveJobToJson(job->record);
  job->thread = std::thread([this, job] { Run(job); });
  return out;
}

void LiveMoveService::AbortAtDestination(const Job& job, const std::string& reason) {
  json request = {{"migration_id", job.record.migration_id}, {"reason", reason}};
  auto r = CallPeer(job.peer, MoveFrame::kAbort, request, MoveFrame::kAbortReply,
                    options_.peer_timeout_ms);
  if (r)
    base::LogInfo("job " + job.record.id + ": destination " + job.peer.ToString() +
                  " aborted the move");
  else
    base::LogWarning("job " + job.record.id +
                     ": abort at the destination: " + r.error().ToString() +
                     " (it cleans up on its own once its incoming worker exits)");
}

void LiveMoveService::Update(Job& job, const LiveMoveStatus& status) {
  base::MutexLock lock(jobs_->mu());
  job.record.status = status;
  job.record.status.migration_id = job.record.migration_id;
}

void LiveMoveService::Finish(Job& job, LiveMoveStatus status) {
  base::MutexLock lock(jobs_->mu());
  status.migration_id = job.record.migration_id;
  job.record.status = std::move(status);
  job.record.ended_unix_ms = UnixMillisNow();
  jobs_->RecordFinished(job.record);
  base::LogInfo("job " + job.record.id + ": " + std::string(ToString(job.record.status.phase)) +
                (job.record.status.error.empty() ? "" : ": " + job.record.status.error));
}

void LiveMoveService::FinishMoved(Job& job, const VmService::MovedVm& moved,
                                  bool destination_answered) {
  LiveMoveStatus s = LastStatus(jobs_->mu(), job.record);
  // The worker's last word (its exit record) is the report, when it left one.
  if (auto report = LiveMoveStatusFromJson(json::parse(moved.report, nullptr, false)); report)
    s = *report;
  s.phase = LiveMovePhase::kCompleted;
  s.error_code.clear();
  s.error.clear();
  {
    base::MutexLock lock(jobs_->mu());
    job.record.removed = moved.removed;
    job.record.kept = moved.kept;
  }
  // The destination adopts a committed move on its own within a poll
  // interval; asking for its status adopts it at once, so when `ferry
  // move-vm` returns the VM is already listed there.
  if (destination_answered) return Finish(job, s);
  if (auto verdict = DestinationVerdict(job); verdict && *verdict != RemoteMoveState::kCommitted)
    base::LogError("job " + job.record.id +
                   ": the worker reported the move committed but the destination " +
                   job.peer.ToString() + " says " + std::string(ToString(*verdict)));
  Finish(job, s);
}

void LiveMoveService::FinishFailed(Job& job, const base::Error& error) {
  vms_.moves().EndLiveMove(job.record.vm, job.record.migration_id);
  AbortAtDestination(job, error.message());
  LiveMoveStatus s = LastStatus(jobs_->mu(), job.record);
  s.phase = LiveMovePhase::kFailed;
  SetError(s, error);
  Finish(job, s);
}

base::Result<RemoteMoveState> LiveMoveService::DestinationVerdict(const Job& job) {
  auto state = AskMoveState(job.peer, job.record.migration_id, options_.peer_timeout_ms);
  if (!state)
    base::LogWarning("job " + job.record.id +
                     ": status at the destination: " + state.error().ToString());
  return state;
}

void LiveMoveService::FinishInDoubt(Job& job, const std::string& why,
                                    const base::Error& unreachable) {
  // No EndLiveMove: the departure record stays (in doubt), so nothing here
  // starts a copy that may already run at the destination.
  LiveMoveStatus s = LastStatus(jobs_->mu(), job.record);
  s.phase = LiveMovePhase::kInDoubt;
  SetError(s, base::Error(base::Code::kUnavailable,
                          why + "; the destination " + job.peer.ToString() +
                              " cannot say whether it committed (" + unreachable.message() +
                              "): " + ResolveHint(job.record.vm)));
  vms_.departures().MarkInDoubt(job.record.vm, job.record.migration_id, s.error);
  Finish(job, s);
}

void LiveMoveService::OnWorkerGone(Job& job, const std::string& why) {
  const std::string vm = job.record.vm;
  if (auto moved = vms_.moves().MovedAway(vm)) return FinishMoved(job, *moved);
  // No "moved" exit: the worker died. It may have died after the commit
  // point, so the destination decides (its Status kills an uncommitted
  // incoming worker before answering "aborted").
  auto verdict = DestinationVerdict(job);
  if (!verdict)
    return FinishInDoubt(job, "the vm's worker died during the move (" + why + ")",
                         verdict.error());
  if (*verdict == RemoteMoveState::kCommitted) {
    base::LogWarning("job " + job.record.id + ": " + why +
                     ", but the destination had committed: vm " + vm + " runs there now");
    return FinishMoved(job, vms_.moves().FinishMovedVm(vm, ""), /*destination_answered=*/true);
  }
  FinishFailed(job, base::Error(base::Code::kAborted,
                                "the vm's worker died during the move (" + why +
                                    "); the vm stays on this host with its files intact"));
}

void LiveMoveService::OnWorkerSilent(Job& job, const std::string& why, bool completed_seen) {
  const std::string vm = job.record.vm;
  base::Result<RemoteMoveState> verdict = RemoteMoveState::kCommitted;
  if (!completed_seen) verdict = DestinationVerdict(job);
  if (!verdict) return FinishInDoubt(job, why, verdict.error());
  if (*verdict == RemoteMoveState::kCommitted) {
    // The VM runs there; this worker holds a paused copy that must never run.
    if (auto st = vms_.moves().KillWorkerOfMovedVm(vm, 10000); !st)
      base::LogError("job " + job.record.id + ": " + st.error().ToString());
    return FinishMoved(job, vms_.moves().FinishMovedVm(vm, ""),
                       /*destination_answered=*/!completed_seen);
  }
  // Not committed: stop polling, so the worker's lease ends a move that has
  // not reached switchover, and tell the destination to give up (after
  // switchover that makes the worker's own Status answer "aborted").
  FinishFailed(job, base::Error(base::Code::kDeadlineExceeded, why));
}

void LiveMoveService::Run(std::shared_ptr<Job> job) {
  base::SetThreadName("live-move-job");
  const std::string vm = job->record.vm;
  const WorkerRequest poll = LiveMoveCall({{"action", "status"}});
  uint64_t silent_since_ns = 0;     // first unanswered poll of a living worker
  uint64_t completed_since_ns = 0;  // the worker reported completed
  for (;;) {
    if (jobs_->WaitStopping(options_.poll_interval_ms)) return;  // the worker's lease decides
    auto reply = CallWorkerBounded(job->control_socket, poll, options_.worker_call_timeout_ms);
    if (NeverBegan(reply, job->record.migration_id)) {
      // Taken up after a restart, but the worker never heard of the move
      // (ferryd stopped between Prepare and the worker's start).
      return FinishFailed(
          *job, base::Error(base::Code::kAborted,
                            "interrupted: ferryd stopped before the worker started the move; vm " +
                                vm + " stays here"));
    }
    std::optional<LiveMoveStatus> status = reply ? StatusOf(*reply) : std::nullopt;
    const uint64_t now = base::MonotonicNanos();
    if (!status) {
      auto state = vms_.moves().CurrentState(vm);
      if (!state || !HasWorker(*state)) {
        std::string why =
            "the worker exited; vm " + vm + " is " +
            (state ? std::string(ToString(*state)) : std::string("gone from the inventory"));
        return OnWorkerGone(*job, why);
      }
      if (completed_since_ns != 0) {
        if (now - completed_since_ns < kMovedExitWaitNs) continue;
        return OnWorkerSilent(*job, "the worker did not exit after the destination committed",
                              true);
      }
      if (silent_since_ns == 0) silent_since_ns = now;
      if (now - silent_since_ns < kSilenceLimitNs) continue;
      return OnWorkerSilent(
          *job,
          "the worker stopped answering: " +
              (reply ? std::string("no live move status") : reply.error().message()),
          false);
    }
    silent_since_ns = 0;
    if (!IsTerminal(status->phase)) {
      Update(*job, *status);
      continue;
    }
    if (status->phase == LiveMovePhase::kCompleted) {
      // The destination committed; the worker shuts its VM down and exits
      // "moved", and VmService removes the VM. Keep the report meanwhile,
      // but not its phase: the job is completed only once FinishMoved has
      // removed the VM here and the destination has adopted it, so a client
      // that sees "completed" finds the VM on exactly one host.
      LiveMoveStatus resolving = *status;
      resolving.phase = LiveMovePhase::kResolving;
      Update(*job, resolving);
      if (completed_since_ns == 0) completed_since_ns = now;
      if (now - completed_since_ns < kMovedExitWaitNs) continue;
      return OnWorkerSilent(*job, "the worker did not exit after the destination committed", true);
    }
    // Failed: the VM runs here. In doubt: it stays paused here and the
    // destination may have committed, so nothing is aborted there and the
    // departure record holds the VM until the destination answers.
    if (status->phase == LiveMovePhase::kFailed) {
      AbortAtDestination(*job, "the move failed: " + status->error);
      vms_.moves().EndLiveMove(vm, job->record.migration_id);
    } else {
      if (status->error.empty())
        status->error = "the move is in doubt: the source stays paused; the destination " +
                        job->peer.ToString() + " could not say whether it committed";
      status->error += "; " + ResolveHint(vm);
      vms_.departures().MarkInDoubt(vm, job->record.migration_id, status->error);
    }
    return Finish(*job, *status);
  }
}

base::Result<json> LiveMoveService::List() { return jobs_->List(); }

base::Result<json> LiveMoveService::Get(const std::string& id) { return jobs_->Get(id); }

}  // namespace appliance
