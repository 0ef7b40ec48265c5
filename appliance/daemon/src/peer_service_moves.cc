// PeerService: what happens to an incoming move after Prepare — Status and
// Abort requests, the monitor that adopts committed moves and cleans up
// failed ones, and the recovery of incoming/ when ferryd starts.
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <filesystem>

#include "base/clock.h"
#include "base/log.h"
#include "common/process.h"
#include "daemon/peer_service.h"
#include "daemon/worker_launcher.h"
#include "ipc/vm_dir_files.h"
#include "ipc/worker_protocol.h"
#include "peer_service_internal.h"
#include "protocol/peer_trust.h"

namespace appliance {
namespace {

// How long a killed worker may take to exit (it holds guest memory to unmap).
constexpr int kKillWaitMs = 30000;

bool IsSymlink(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

// Whether pid is the incoming worker of migration id (its command line says
// so): after a restart, a recorded pid may have been reused.
bool IsIncomingWorker(int64_t pid, const std::string& id) {
  auto cmdline = base::ReadFileToString("/proc/" + std::to_string(pid) + "/cmdline");
  if (!cmdline) return false;
  return cmdline->find(std::string("--incoming") + '\0') != std::string::npos &&
         cmdline->find(std::string("--migration-id") + '\0' + id + '\0') != std::string::npos;
}

base::Result<std::string> MigrationIdOf(const nlohmann::json& request) {
  if (!request.is_object() || !request.contains("migration_id") ||
      !request["migration_id"].is_string())
    return base::Error(base::Code::kInvalidArgument, "request has no \"migration_id\" string");
  ASSIGN_OR_RETURN(MigrationIdBytes bytes,
                   ParseMigrationId(request["migration_id"].get<std::string>()));
  return FormatMigrationId(bytes);
}

nlohmann::json StateReply(const std::string& id, RemoteMoveState state,
                          const std::string& message) {
  return {{"migration_id", id}, {"state", std::string(ToString(state))}, {"message", message}};
}

}  // namespace

// ---- Bookkeeping ------------------------------------------------------------

std::shared_ptr<PeerService::Move> PeerService::FindMove(const std::string& id) {
  base::MutexLock lock(mu_);
  auto it = moves_.find(id);
  return it == moves_.end() ? nullptr : it->second;
}

void PeerService::Forget(const std::string& id) {
  base::MutexLock lock(mu_);
  moves_.erase(id);
}

size_t PeerService::RunningMoves() {
  base::MutexLock lock(mu_);
  size_t n = 0;
  for (const auto& [id, m] : moves_) n += m->state.load() == MoveState::kRunning ? 1 : 0;
  return n;
}

base::Status PeerService::WriteRecord(const Move& move, const std::string& state,
                                      const std::string& message) {
  nlohmann::json j = {{"migration_id", move.id},
                      {"vm_name", move.name},
                      {"state", state},
                      {"pid", move.pid},
                      {"source_fingerprint", move.source_fingerprint},
                      {"message", message},
                      {"changed_unix_ms", UnixMillisNow()}};
  auto st = base::WriteFileAtomically(RecordsDir() + "/" + move.id + ".json", j.dump(2) + "\n");
  if (!st) return st.error().Wrap("record incoming move " + move.id);
  return base::Ok();
}

base::Status PeerService::CheckMoveOwner(const std::string& id, const Move* move,
                                         const Caller& caller) const {
  std::string owner;
  if (move != nullptr) {
    owner = move->source_fingerprint;
  } else if (auto record = ReadRecord(id)) {
    owner = record->value("source_fingerprint", "");
  }
  // A move here whose owner is not known cannot be answered to anyone; a
  // record without one is from before ferry authenticated its peers, and
  // no record at all means the answer is "unknown".
  if (move != nullptr && owner.empty())
    return base::Error(base::Code::kPermissionDenied,
                       "migration " + id + ": this host does not know which host prepared it");
  if (owner.empty() || owner == caller.tls.fingerprint) return base::Ok();
  base::LogWarning("peer service: " + caller.address.text + " (certificate " +
                   caller.tls.fingerprint + ") asked about migration " + id +
                   ", which another host prepared (certificate " + owner + "): refused");
  return base::Error(base::Code::kPermissionDenied,
                     "migration " + id +
                         " was prepared by another host: only that host may ask about or abort it");
}

std::optional<nlohmann::json> PeerService::ReadRecord(const std::string& id) const {
  auto text = base::ReadFileToString(RecordsDir() + "/" + id + ".json");
  if (!text) return std::nullopt;
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (!j.is_object() || !j.contains("state") || !j["state"].is_string()) return std::nullopt;
  return j;
}

void PeerService::PruneRecords() {
  // An aborted move's record is needed only while its source may still ask
  // (about a minute after it lost its streams): keep the newest ones. A
  // committed one is kept for good: a source host that was down for a week
  // still finds its departure record and asks, and "unknown" would free
  // the VM there while it runs here.
  constexpr size_t kKeepRecords = 256;
  std::error_code ec;
  std::vector<std::pair<std::filesystem::file_time_type, std::string>> records;
  for (const auto& e : std::filesystem::directory_iterator(RecordsDir(), ec)) {
    records.emplace_back(e.last_write_time(ec), e.path().string());
  }
  if (records.size() <= kKeepRecords) return;
  std::sort(records.begin(), records.end());
  for (size_t i = 0; i + kKeepRecords < records.size(); ++i) {
    auto text = base::ReadFileToString(records[i].second);
    if (text && text->find("\"running\"") != std::string::npos) continue;  // recovery needs it
    if (text && text->find("\"committed\"") != std::string::npos) continue;
    ::unlink(records[i].second.c_str());
  }
}

bool PeerService::Committed(const Move& move) const {
  struct stat st {};
  return ::stat((move.dir + "/" + kCommittedMarker).c_str(), &st) == 0;
}

// ---- Ending a worker, adopting, cleaning up ---------------------------------

void PeerService::WaitWorkerExit(Move& move, int timeout_ms) {
  if (move.exited) return;
  auto gone = PidfdWaitExit(move.pidfd.get(), timeout_ms);
  if (!gone || !*gone) return;
  // It has exited (the pidfd said so): the reap only frees its zombie, and
  // nothing here needs its exit status.
  if (move.is_child) (void)PidfdReap(move.pidfd.get(), /*nohang=*/false);
  move.exited = true;
}

base::Result<bool> PeerService::EndWorker(Move& move, const std::string& reason) {
  if (Committed(move)) return true;
  WaitWorkerExit(move, 0);
  if (!move.exited) {
    // Ask first: only the worker knows whether it is past its commit point,
    // and after its abort returns it never will be (LiveMoveDestination::Abort).
    WorkerRequest request{WorkerOp::kLiveMove, ""};
    request.live_move = nlohmann::json{{"action", "abort"}, {"reason", reason}}.dump();
    auto reply = CallWorker(move.dir + "/control.sock", request, options_.worker_call_timeout_ms);
    if (Committed(move)) return true;
    if (!reply)
      base::LogWarning("incoming move " + move.id + ": worker did not take the abort (" +
                       reply.error().message() + "); killing it");
    // Whatever it answered: a worker that has not committed must be gone
    // before anyone is told "aborted". A failed kill (it exited meanwhile)
    // needs no handling: WaitWorkerExit below is what decides.
    (void)PidfdSignal(move.pidfd.get(), SIGKILL);
    WaitWorkerExit(move, kKillWaitMs);
    if (!move.exited)
      return base::Error(base::Code::kUnavailable,
                         "incoming worker pid " + std::to_string(move.pid) + " of migration " +
                             move.id + " did not exit after SIGKILL; ask again");
  }
  return Committed(move);
}

bool PeerService::Adopt(Move& move) {
  const std::string socket = options_.host.storage_root + "/vms/" + move.name + "/control.sock";
  WaitWorkerExit(move, 0);
  const int64_t pid = move.exited ? 0 : move.pid;
  // The marker already makes the move committed; the record says so before
  // the rename, so a ferryd stopped half-way through the adoption (incoming
  // directory gone, symlink not made yet) never answers a Status "aborted".
  if (!move.adopt_failed_logged) {
    if (auto st = WriteRecord(move, "committed", ""); !st) base::LogWarning(st.error().ToString());
  }
  auto adopted = vms_.incoming().Adopt(move.name, move.dir, pid, socket, move.plan.paused);
  if (!adopted) {
    // Retried on every monitor tick: the VM runs here now whatever happens.
    if (!move.adopt_failed_logged)
      base::LogError("incoming move " + move.id + " committed but vm " + move.name +
                     " cannot be adopted (retrying): " + adopted.error().message());
    move.adopt_failed_logged = true;
    // Rewritten on every retry, so a failure is not logged each time: the
    // record already says committed, and the adoption's error was logged.
    (void)WriteRecord(move, "committed", "not adopted yet: " + adopted.error().message());
    return false;
  }
  if (auto st = WriteRecord(move, "committed", ""); !st) base::LogWarning(st.error().ToString());
  base::LogInfo("incoming move " + move.id + ": vm " + move.name + " committed and adopted");
  move.state.store(MoveState::kAdopted);
  if (pid == 0) {
    // No worker keeps using the old path.
    if (IsSymlink(move.dir)) ::unlink(move.dir.c_str());
    move.state.store(MoveState::kEnded);
    Forget(move.id);
  }
  return true;
}

// ---- Requests ---------------------------------------------------------------

base::Result<nlohmann::json> PeerService::Status(const nlohmann::json& request,
                                                 const Caller& caller) {
  ASSIGN_OR_RETURN(std::string id, MigrationIdOf(request));
  std::shared_ptr<Move> move = FindMove(id);
  RETURN_IF_ERROR(CheckMoveOwner(id, move.get(), caller));
  if (move) {
    base::MutexLock op(move->op_mu);
    if (move->state.load() == MoveState::kRunning) {
      ASSIGN_OR_RETURN(
          bool committed,
          EndWorker(*move, "the source asked for the move's status after losing its streams"));
      if (committed) {
        (void)Adopt(*move);  // false: the monitor retries; the VM is committed here either way
        return StateReply(id, RemoteMoveState::kCommitted, "");
      }
      CleanUp(*move, "the source lost its streams before the move committed");
      return StateReply(id, RemoteMoveState::kAborted,
                        "the move did not commit; it was stopped here");
    }
    if (move->state.load() == MoveState::kAdopted)
      return StateReply(id, RemoteMoveState::kCommitted, "");
  }
  auto record = ReadRecord(id);
  if (!record) return StateReply(id, RemoteMoveState::kUnknown, "no move " + id + " on this host");
  const std::string state = (*record)["state"].get<std::string>();
  const std::string message = record->value("message", "");
  if (state == "committed") return StateReply(id, RemoteMoveState::kCommitted, message);
  // "running" without a tracked move should not happen (recovery rewrites
  // the record), but a record whose "committed" could not be written (a
  // full disk) reads so: claim neither outcome, and the source stays in
  // doubt rather than run a VM that may run here.
  if (state == "running")
    return StateReply(id, RemoteMoveState::kRunning,
                      "this host's record of the move is incomplete: " + message);
  return StateReply(id, RemoteMoveState::kAborted, message);
}

base::Result<nlohmann::json> PeerService::Abort(const nlohmann::json& request,
                                                const Caller& caller) {
  ASSIGN_OR_RETURN(std::string id, MigrationIdOf(request));
  std::string reason = "aborted by the source";
  if (request.contains("reason") && request["reason"].is_string() &&
      !request["reason"].get<std::string>().empty())
    reason += ": " + request["reason"].get<std::string>();
  auto reply = [&](RemoteMoveState state) {
    return nlohmann::json{{"migration_id", id}, {"state", std::string(ToString(state))}};
  };
  std::shared_ptr<Move> move = FindMove(id);
  RETURN_IF_ERROR(CheckMoveOwner(id, move.get(), caller));
  if (move) {
    base::MutexLock op(move->op_mu);
    if (move->state.load() == MoveState::kRunning) {
      ASSIGN_OR_RETURN(bool committed, EndWorker(*move, reason));
      if (committed) {
        (void)Adopt(*move);  // false: the monitor retries; the VM is committed here either way
        return reply(RemoteMoveState::kCommitted);
      }
      CleanUp(*move, reason);
      return reply(RemoteMoveState::kAborted);
    }
    if (move->state.load() == MoveState::kAdopted) return reply(RemoteMoveState::kCommitted);
  }
  auto record = ReadRecord(id);
  if (record && (*record)["state"] == "committed") return reply(RemoteMoveState::kCommitted);
  return reply(RemoteMoveState::kAborted);  // never started here, or already cleaned up
}

// ---- Monitor ----------------------------------------------------------------

void PeerService::CheckMove(Move& move) {
  switch (move.state.load()) {
    case MoveState::kRunning:
      if (Committed(move)) {
        (void)Adopt(move);  // false: retried on the next tick
        return;
      }
      WaitWorkerExit(move, 0);
      if (move.exited) {
        // It may have committed just before it exited.
        if (Committed(move)) {
          (void)Adopt(move);  // false: retried on the next tick
        } else {
          CleanUp(move, "the incoming worker exited before the move committed");
        }
      }
      return;
    case MoveState::kAdopted:
      // Not ours to reap any more (VmService's supervisor does); only to
      // notice the exit and drop the symlink the worker's paths needed.
      if (auto gone = PidfdWaitExit(move.pidfd.get(), 0); gone && *gone) {
        if (IsSymlink(move.dir)) ::unlink(move.dir.c_str());
        move.state.store(MoveState::kEnded);
        Forget(move.id);
      }
      return;
    case MoveState::kCleanupPending:
      if (base::MonotonicNanos() >= move.cleanup.next_try_ns)
        (void)TryCleanUp(move);  // false: a later retry is due
      return;
    case MoveState::kEnded: return;
  }
}

void PeerService::MonitorLoop() {
  base::SetThreadName("peer-monitor");
  for (;;) {
    std::vector<std::shared_ptr<Move>> moves;
    {
      base::MutexLock lock(mu_);
      for (auto& [id, m] : moves_) moves.push_back(m);
    }
    std::vector<pollfd> fds;
    fds.push_back({stop_.fd(), POLLIN, 0});
    for (auto& m : moves) {
      // A pending clean-up's worker has exited: its pidfd would stay
      // readable and turn this wait into a spin. Its retries are timed by
      // the tick.
      if (m->pidfd.valid() && m->state.load() != MoveState::kCleanupPending)
        fds.push_back({m->pidfd.get(), POLLIN, 0});
    }
    // The pidfds wake us at once when a worker exits; the timeout is the
    // commit-marker poll. The stop eventfd is never consumed: every waiter sees it.
    int r = ::poll(fds.data(), fds.size(), options_.poll_interval_ms);
    if (r < 0 && errno != EINTR) {
      base::LogError(std::string("peer monitor: poll: ") + std::strerror(errno));
      return;
    }
    if (r > 0 && (fds[0].revents & POLLIN)) return;
    for (auto& m : moves) {
      if (!m->op_mu.try_lock()) continue;  // a Status or Abort is handling it
      CheckMove(*m);
      m->op_mu.unlock();
    }
  }
}

// ---- Recovery ---------------------------------------------------------------

void PeerService::Recover() {
  PruneRecords();
  std::error_code ec;
  std::vector<std::string> ids;
  for (const auto& entry : std::filesystem::directory_iterator(IncomingRoot(), ec)) {
    ids.push_back(entry.path().filename().string());
  }
  if (ec) base::LogWarning("peer service: list " + IncomingRoot() + ": " + ec.message());
  for (const std::string& id : ids) RecoverEntry(id);
}

void PeerService::RecoverEntry(const std::string& id) {
  const std::string dir = IncomingRoot() + "/" + id;
  auto move = std::make_shared<Move>();
  move->id = id;
  move->dir = dir;
  auto record = ReadRecord(id);
  if (record) {
    move->name = record->value("vm_name", "");
    move->pid = record->value("pid", int64_t{0});
    move->source_fingerprint = record->value("source_fingerprint", "");
  }
  if (move->pid > 0 && IsIncomingWorker(move->pid, id)) {
    if (auto fd = PidfdOpen(move->pid)) move->pidfd = std::move(*fd);
  }
  bool alive = false;
  {
    base::MutexLock op(move->op_mu);  // not in moves_ yet: uncontended
    move->exited = !move->pidfd.valid();
    alive = !move->exited;
  }

  if (IsSymlink(dir)) {
    // An adopted VM whose worker still used its incoming path.
    if (alive) {
      move->state.store(MoveState::kAdopted);
      base::MutexLock lock(mu_);
      moves_[id] = move;
    } else {
      ::unlink(dir.c_str());
    }
    return;
  }
  auto plan_text = base::ReadFileToString(dir + "/" + kIncomingPlanFile);
  auto plan = plan_text ? PrepareRequestFromJson(nlohmann::json::parse(*plan_text, nullptr, false))
                        : base::Result<PrepareRequest>(plan_text.error());
  // Who prepared it, also when the record could not say (written before
  // the worker started, unlike the record).
  if (move->source_fingerprint.empty()) {
    if (auto tls_text = base::ReadFileToString(dir + "/" + kIncomingTlsFile)) {
      if (auto trust = PeerTrustFromJson(nlohmann::json::parse(*tls_text, nullptr, false)))
        move->source_fingerprint = trust->peer_fingerprint;
    }
  }
  if (plan) {
    move->plan = *plan;
    move->name = plan->vm_name;
  } else {
    base::LogWarning("incoming move " + id + ": plan unreadable (" + plan.error().message() +
                     "); its destination files cannot be removed");
    if (auto def = config::LoadVmDefinition(dir + "/vm.toml"); def) move->name = def->name;
  }
  // An aborted move whose clean-up failed before the restart: the name is
  // not held for it any more, only its leftovers are removed.
  if (!alive && RecoverPendingCleanUp(move)) return;
  {
    base::MutexLock lock(mu_);
    moves_[id] = move;
  }
  base::MutexLock op(move->op_mu);
  // Held as at Prepare: the name is this move's until it is adopted or
  // cleaned up (both release it).
  if (!move->name.empty()) {
    if (auto st = vms_.incoming().ReserveName(move->name); !st)
      base::LogWarning("incoming move " + id + ": " + st.error().message());
  }
  if (Committed(*move)) {
    // As crashed if the worker is gone; false: the monitor retries it.
    (void)Adopt(*move);
  } else if (alive) {
    base::LogInfo("incoming move " + id + " of vm " + move->name + ": worker pid " +
                  std::to_string(move->pid) + " still running; watching it again");
  } else {
    CleanUp(*move, "ferryd restarted and found the incoming worker gone before the move committed");
  }
}

}  // namespace appliance
