// MoveSlot: one of the host's live-move slots (host.toml
// migration.max_live_moves), held by a job while LiveMoveService::Start
// prepares it. A job counts against the limit from the moment it is in the
// JobTable, so the slot is taken before the slow part of a start (Prepare at
// the destination, the worker's start) and two requests cannot both take the
// last one.
//
// Life of a slot:
//   1. Acquire: under the table's mutex, refuses if ferryd is stopping or
//      the limit is reached (naming the running jobs); otherwise adds the job
//      and writes its record (before any departure record, so a restarted
//      ferryd finds the job of every departure it finds).
//   2. Every early return of the start destroys the slot uncommitted: the
//      job and its record are forgotten (JobTable::Remove), and the slot is
//      free again.
//   3. Commit, once the job's thread runs: the slot is the job's until it
//      finishes (a finished job no longer counts as running).
//
// Job is the JobTable's job type (job_table.h); the job's record must be
// complete (id, vm, started_unix_ms) before Acquire. The table must outlive
// the slot. A slot is used by the one thread that starts the job.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"
#include "job_table.h"

namespace appliance {

template <typename Job>
class MoveSlot {
 public:
  // what: the move, as the refusal names it ("move vm X to H").
  // Errors: kUnavailable (ferryd is stopping), kResourceExhausted (`limit`
  // jobs are running).
  static base::Result<MoveSlot> Acquire(JobTable<Job>& jobs, std::shared_ptr<Job> job, size_t limit,
                                        const std::string& what) {
    base::MutexLock lock(jobs.mu());
    if (jobs.stopping()) return base::Error(base::Code::kUnavailable, "ferryd is stopping");
    std::vector<std::string> active = jobs.Running();
    if (active.size() >= limit) {
      std::string list;
      for (const auto& a : active) list += (list.empty() ? "" : ", ") + a;
      return base::Error(base::Code::kResourceExhausted,
                         "cannot " + what + ": " + std::to_string(active.size()) +
                             " live moves are running, the host allows " + std::to_string(limit) +
                             " at once (migration.max_live_moves): " + list +
                             "; wait for one to finish (ferry jobs)");
    }
    jobs.Add(job);
    jobs.Persist(job->record);
    return MoveSlot(jobs, std::move(job));
  }

  MoveSlot(MoveSlot&& other) noexcept : jobs_(other.jobs_), job_(std::move(other.job_)) {
    other.jobs_ = nullptr;
  }
  MoveSlot& operator=(MoveSlot&&) = delete;
  MoveSlot(const MoveSlot&) = delete;
  MoveSlot& operator=(const MoveSlot&) = delete;
  // Uncommitted: gives the slot back (forgets the job and its record).
  ~MoveSlot() {
    if (jobs_ != nullptr) jobs_->Remove(job_->record.id);
  }

  // The job runs: it keeps the slot until it finishes.
  void Commit() { jobs_ = nullptr; }

  const std::shared_ptr<Job>& job() const { return job_; }

 private:
  MoveSlot(JobTable<Job>& jobs, std::shared_ptr<Job> job) : jobs_(&jobs), job_(std::move(job)) {}

  JobTable<Job>* jobs_;  // null once committed or moved from
  std::shared_ptr<Job> job_;
};

}  // namespace appliance
