// PeerService: removing what an incoming move that did not commit left at
// the destination (docs/live_move.md, "Clean-up at the destination").
//
// A clean-up removes the destination files the move's plan lists, then the
// incoming directory. A removal can fail for as long as someone else's fault
// lasts (the destination remounted read-only, a file made immutable); the
// leftovers would then block every retry of the move ("destination file …
// already exists"). So a failed clean-up is durable and retried:
//   - the incoming directory stays, with the plan, and the marker
//     "cleanup-pending" (JSON: reason, files still to remove, last error);
//   - the monitor tries again after cleanup_retry_min_ms, then twice as long
//     each time up to cleanup_retry_max_ms; a ferryd start tries at once
//     (RecoverPendingCleanUp); so does a Prepare whose files are in the way;
//   - the move counts as aborted meanwhile (Status, the record), takes no
//     slot, and its VM name is free.
// What may be deleted: only files of the plan (the marker's list is
// intersected with the plan's again at start), and never one that a VM of
// this host uses or another incoming move plans now (checked at every
// attempt: after a first partial attempt someone may have put a file of
// that name to use).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>

#include "base/clock.h"
#include "base/log.h"
#include "daemon/peer_service.h"
#include "daemon/runtime_record.h"
#include "daemon/worker_launcher.h"
#include "ipc/vm_dir_files.h"
#include "peer_service_internal.h"

namespace appliance {
namespace {

std::string MarkerPath(const std::string& dir) { return dir + "/" + kCleanupPendingMarker; }

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : "; ") + s;
  return out;
}

std::string Seconds(int ms) { return std::to_string((ms + 999) / 1000) + " s"; }

}  // namespace

void PeerService::CleanUp(Move& move, const std::string& reason) {
  std::string detail;
  if (auto record = ReadExitRecord(move.dir + "/worker.exit", move.pid);
      record && !record->message.empty()) {
    detail = record->message;
  } else if (auto text = base::ReadFileToString(move.dir + "/worker.error");
             text && !text->empty()) {
    detail = *text;
    while (!detail.empty() && detail.back() == '\n') detail.pop_back();
  }
  const std::string message = detail.empty() ? reason : reason + ": " + detail;
  // Aborted from here on, whatever the removal below does: the worker is
  // gone without committing, so the move can never complete.
  if (auto st = WriteRecord(move, "aborted", message); !st) base::LogWarning(st.error().ToString());
  vms_.incoming().ReleaseName(move.name);
  base::LogWarning("incoming move " + move.id + " of vm " + move.name + " aborted: " + message);
  move.cleanup = PendingCleanUp{};
  move.cleanup.files = IncomingDestinationFiles(move.plan);
  move.cleanup.reason = message;
  (void)TryCleanUp(move);  // false: pending, and the monitor retries it
}

bool PeerService::TryCleanUp(Move& move) {
  PendingCleanUp& c = move.cleanup;
  ++c.attempts;
  // Files no longer ours to remove: a VM of this host uses them, or another
  // incoming move plans them.
  std::map<std::string, std::string> keep;
  for (auto& [file, vm] : vms_.moves().FilesUsedByOtherVms(""))
    keep.emplace(file, "vm " + vm + " uses it");
  {
    base::MutexLock lock(mu_);
    for (const auto& [id, m] : moves_) {
      const MoveState state = m->state.load();
      if (m.get() == &move || (state != MoveState::kRunning && state != MoveState::kAdopted))
        continue;
      for (const std::string& file : IncomingDestinationFiles(m->plan))
        keep.emplace(file, "incoming move " + id + " plans it");
    }
  }
  std::vector<std::string> left, failures;
  for (const std::string& file : c.files) {
    if (auto it = keep.find(file); it != keep.end()) {
      base::LogWarning("incoming move " + move.id + ": clean-up keeps " + file + ": " + it->second);
      continue;
    }
    // Absent already: done. (Asked first because a read-only file system
    // refuses to unlink even a name that does not exist, with EROFS.)
    struct stat st {};
    if (::lstat(file.c_str(), &st) != 0 && errno == ENOENT) continue;
    if (::unlink(file.c_str()) == 0 || errno == ENOENT) continue;
    failures.push_back("remove " + file + ": " + std::strerror(errno));
    left.push_back(file);
  }
  c.files = left;
  std::error_code ec;
  if (failures.empty()) {
    std::filesystem::remove_all(move.dir, ec);
    if (ec) failures.push_back("remove " + move.dir + ": " + ec.message());
  }
  if (failures.empty()) {
    if (c.attempts > 1)
      base::LogInfo("incoming move " + move.id + " of vm " + move.name +
                    ": clean-up done (attempt " + std::to_string(c.attempts) + ")");
    move.state.store(MoveState::kEnded);
    Forget(move.id);
    return true;
  }

  c.error = Join(failures);
  c.backoff_ms = c.backoff_ms == 0 ? options_.cleanup_retry_min_ms
                                   : std::min(c.backoff_ms * 2, options_.cleanup_retry_max_ms);
  c.next_try_ns = base::MonotonicNanos() + uint64_t(c.backoff_ms) * 1'000'000;
  const nlohmann::json marker = {{"migration_id", move.id},
                                 {"vm_name", move.name},
                                 {"reason", c.reason},
                                 {"files", c.files},
                                 {"error", c.error},
                                 {"attempts", c.attempts},
                                 {"changed_unix_ms", UnixMillisNow()}};
  std::string durable;
  if (auto st = base::WriteFileAtomically(MarkerPath(move.dir), marker.dump(2) + "\n"); !st)
    durable = "; and the marker cannot be written (" + st.error().message() +
              "), so a ferryd restart "
              "will start it over from the plan";
  base::LogError("incoming move " + move.id + " of vm " + move.name +
                 ": clean-up failed (attempt " + std::to_string(c.attempts) + ", next in " +
                 Seconds(c.backoff_ms) + "): " + c.error + durable);
  move.state.store(MoveState::kCleanupPending);
  return false;
}

std::map<std::string, std::string> PeerService::RetryCleanUpsInTheWay(const PrepareRequest& plan) {
  const std::vector<std::string> planned = IncomingDestinationFiles(plan);
  const std::set<std::string> wanted(planned.begin(), planned.end());
  std::vector<std::shared_ptr<Move>> pending;
  {
    base::MutexLock lock(mu_);
    for (const auto& [id, m] : moves_) {
      if (m->state.load() == MoveState::kCleanupPending) pending.push_back(m);
    }
  }
  std::map<std::string, std::string> in_the_way;
  for (const std::shared_ptr<Move>& m : pending) {
    base::MutexLock op(m->op_mu);
    if (m->state.load() != MoveState::kCleanupPending) continue;
    const auto& files = m->cleanup.files;
    if (std::none_of(files.begin(), files.end(),
                     [&](const std::string& f) { return wanted.count(f) != 0; }))
      continue;
    base::LogInfo("incoming move " + plan.migration_id + " of vm " + plan.vm_name +
                  ": retrying the clean-up of aborted move " + m->id +
                  " first, its leftovers are in the way");
    if (TryCleanUp(*m)) continue;
    for (const std::string& f : m->cleanup.files) {
      if (wanted.count(f) == 0) continue;
      in_the_way[f] = "destination file " + f + " is left over from the aborted incoming move " +
                      m->id + " of vm " + m->name + ", whose clean-up keeps failing (" +
                      m->cleanup.error + "); ferryd retries it, at most " +
                      Seconds(options_.cleanup_retry_max_ms) + " apart";
    }
  }
  return in_the_way;
}

bool PeerService::RecoverPendingCleanUp(const std::shared_ptr<Move>& move) {
  auto text = base::ReadFileToString(MarkerPath(move->dir));
  if (!text) return false;
  const nlohmann::json marker = nlohmann::json::parse(*text, nullptr, false);
  PendingCleanUp c;
  if (marker.is_object()) {
    c.reason = marker.value("reason", "");
    c.attempts = marker.value("attempts", uint32_t{0});
  }
  // Only what the plan lists may go, whatever the marker says.
  const std::vector<std::string> planned = IncomingDestinationFiles(move->plan);
  if (marker.is_object() && marker.contains("files") && marker["files"].is_array()) {
    for (const auto& f : marker["files"]) {
      if (f.is_string() && std::count(planned.begin(), planned.end(), f.get<std::string>()) != 0)
        c.files.push_back(f.get<std::string>());
    }
  } else {
    c.files = planned;  // unreadable marker: the plan's list (missing files are fine)
  }
  base::LogInfo("incoming move " + move->id + " of vm " + move->name +
                ": continuing its clean-up (" + std::to_string(c.files.size()) + " files left)");
  {
    base::MutexLock lock(mu_);
    moves_[move->id] = move;
  }
  base::MutexLock op(move->op_mu);
  move->cleanup = std::move(c);
  move->state.store(MoveState::kCleanupPending);
  (void)TryCleanUp(*move);  // false: still pending, and the monitor retries it
  return true;
}

}  // namespace appliance
