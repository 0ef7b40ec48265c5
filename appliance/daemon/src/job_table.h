// JobTable: the jobs of one ferryd job service (StorageMoveService,
// LiveMoveService) and the threads that run them. Each job's record is kept
// in memory and as <dir>/<id>.json, so `ferry jobs` lists past jobs after a
// ferryd restart; only the newest `history` finished jobs are kept.
//
// Job is the service's own job type; it must have
//   Record record;       // with id, vm, started_unix_ms, ended_unix_ms (0 while running)
//   std::thread thread;  // the job's thread, once started
// and Record must have a JSON codec (to_json, from_json).
//
// Threads: mu() guards every job's record, the table and stopping();
// each method says whether it takes mu() or expects the caller to hold it.
// The owner calls StopAndJoin() before it destroys anything the job threads
// use; the table itself is destroyed after that.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/fd.h"
#include "base/log.h"
#include "base/mutex.h"
#include "base/result.h"
#include "daemon/runtime_record.h"

namespace appliance {

// The record files of a JobTable (job_table.cc).
// Creates `dir` (0700) if needed; the paths of the *.json files in it.
base::Result<std::vector<std::string>> ListJobRecordFiles(const std::string& dir);
// Writes <dir>/<id>.json atomically; a failure is logged (the job goes on,
// only its record after a restart is lost).
void WriteJobRecord(const std::string& dir, const std::string& id, const nlohmann::json& record);
void RemoveJobRecord(const std::string& dir, const std::string& id);

template <typename Job>
class JobTable {
 public:
  using Record = decltype(Job::record);
  using ToJsonFn = nlohmann::json (*)(const Record&);
  using FromJsonFn = base::Result<Record> (*)(const nlohmann::json&);

  JobTable(std::string dir, size_t history, ToJsonFn to_json, FromJsonFn from_json)
      : dir_(std::move(dir)), history_(history), to_json_(to_json), from_json_(from_json) {}

  static bool IsRunning(const Record& record) { return record.ended_unix_ms == 0; }

  // Creates the directory and loads every record in it (unreadable records
  // are skipped with a warning). A job that was running when ferryd stopped
  // is passed to `interrupted`, which either says how it ended (returns
  // false: the table marks it ended now and writes it back) or takes it up
  // again (returns true: it stays running, and the service starts its
  // thread). Call before any job starts.
  base::Status Load(const std::function<bool(Record&)>& interrupted) {
    ASSIGN_OR_RETURN(std::vector<std::string> paths, ListJobRecordFiles(dir_));
    for (const std::string& path : paths) {
      auto text = base::ReadFileToString(path);
      if (!text) continue;
      auto parsed = from_json_(nlohmann::json::parse(*text, nullptr, false));
      if (!parsed) {
        base::LogWarning("job record " + path + " skipped: " + parsed.error().message());
        continue;
      }
      auto job = std::make_shared<Job>();
      job->record = std::move(*parsed);
      const bool ended = IsRunning(job->record) && !interrupted(job->record);
      base::MutexLock lock(mu_);  // nothing else runs yet; the analysis wants it held
      if (ended) {
        job->record.ended_unix_ms = UnixMillisNow();
        Persist(job->record);
      }
      jobs_[job->record.id] = job;
    }
    return base::Ok();
  }

  base::Mutex& mu() const RETURN_CAPABILITY(mu_) { return mu_; }
  // The caller holds mu().
  bool stopping() const REQUIRES(mu_) { return stopping_; }
  // Takes a new job (its record has its id). The caller holds mu().
  void Add(std::shared_ptr<Job> job) REQUIRES(mu_) { jobs_[job->record.id] = std::move(job); }
  // "<id> (vm <name>)" for each running job. The caller holds mu().
  std::vector<std::string> Running() const REQUIRES(mu_) {
    std::vector<std::string> running;
    for (const auto& [id, job] : jobs_) {
      if (IsRunning(job->record)) running.push_back(id + " (vm " + job->record.vm + ")");
    }
    return running;
  }
  // Writes the record's file. The caller holds mu().
  void Persist(const Record& record) const REQUIRES(mu_) {
    WriteJobRecord(dir_, record.id, to_json_(record));
  }
  // A job has just ended: writes its record, then forgets the oldest finished
  // jobs (memory and file) beyond `history`. A job whose thread is not yet
  // joined counts as unfinished. The caller holds mu().
  void RecordFinished(const Record& record) REQUIRES(mu_) {
    Persist(record);
    std::vector<std::pair<int64_t, std::string>> done;
    for (const auto& [id, job] : jobs_) {
      if (!IsRunning(job->record) && !job->thread.joinable())
        done.emplace_back(job->record.ended_unix_ms, id);
    }
    std::sort(done.begin(), done.end());
    while (done.size() > history_) {
      RemoveJobRecord(dir_, done.front().second);
      jobs_.erase(done.front().second);
      done.erase(done.begin());
    }
  }

  // The rest take mu() themselves.
  // Waits up to `ms`; true if the table is stopping (the job thread returns).
  bool WaitStopping(int ms) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    base::MutexLock lock(mu_);
    while (!stopping_ && cv_.WaitUntil(mu_, deadline)) {
    }
    return stopping_;
  }
  // Wakes every WaitStopping and joins every job thread.
  void StopAndJoin() {
    std::vector<std::shared_ptr<Job>> jobs;
    {
      base::MutexLock lock(mu_);
      stopping_ = true;
      cv_.NotifyAll();
      for (auto& [id, job] : jobs_) jobs.push_back(job);
    }
    for (auto& job : jobs) {
      if (job->thread.joinable()) job->thread.join();
    }
  }
  // Forgets a job whose start failed before its thread ran (and its record).
  void Remove(const std::string& id) {
    base::MutexLock lock(mu_);
    jobs_.erase(id);
    RemoveJobRecord(dir_, id);
  }
  // The running jobs (for a service that takes jobs up after a restart).
  // The caller holds mu().
  std::vector<std::shared_ptr<Job>> RunningJobs() const REQUIRES(mu_) {
    std::vector<std::shared_ptr<Job>> running;
    for (const auto& [id, job] : jobs_) {
      if (IsRunning(job->record)) running.push_back(job);
    }
    return running;
  }
  bool Contains(const std::string& id) const {
    base::MutexLock lock(mu_);
    return jobs_.count(id) != 0;
  }
  // {"jobs":[...]}, oldest first.
  nlohmann::json List() const {
    base::MutexLock lock(mu_);
    std::vector<const Record*> records;
    for (const auto& [id, job] : jobs_) records.push_back(&job->record);
    std::sort(records.begin(), records.end(), [](const Record* a, const Record* b) {
      return a->started_unix_ms < b->started_unix_ms;
    });
    nlohmann::json list = nlohmann::json::array();
    for (const Record* r : records) list.push_back(to_json_(*r));
    return nlohmann::json{{"jobs", list}};
  }
  base::Result<nlohmann::json> Get(const std::string& id) const {
    base::MutexLock lock(mu_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return base::Error(base::Code::kNotFound, "no job " + id);
    return to_json_(it->second->record);
  }

 private:
  const std::string dir_;
  const size_t history_;
  const ToJsonFn to_json_;
  const FromJsonFn from_json_;
  mutable base::Mutex mu_;
  base::CondVar cv_;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::map<std::string, std::shared_ptr<Job>> jobs_ GUARDED_BY(mu_);
};

}  // namespace appliance
