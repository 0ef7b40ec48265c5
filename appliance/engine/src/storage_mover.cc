// StorageMover: copy, mirror and switch of a live storage-only move (the
// sequence and its crash reasoning are in storage_mover.h).
#include "engine/storage_mover.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "base/clock.h"
#include "base/fd.h"
#include "base/log.h"
#include "storage/block_sink.h"
#include "storage/disk.h"
#include "storage/mirror_job.h"
#include "storage/qcow2.h"
#include "storage/sparse_copy.h"

namespace appliance {
namespace {

constexpr int kPollMs = 100;
constexpr uint64_t kResumeFlushInterval = 16 << 20;

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

base::Status Rename(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0)
    return base::ErrnoError("rename " + from + " to " + to);
  return base::Ok();
}

}  // namespace

struct StorageMover::DiskRun {
  DiskMove* move = nullptr;
  storage::TrackingDisk* tracking = nullptr;
  std::unique_ptr<storage::Disk> dest_disk;  // qcow2 destination (the sink borrows it)
  std::unique_ptr<storage::BlockSink> sink;
  std::unique_ptr<storage::MirrorJob> job;  // last: borrows the sink
  ~DiskRun() {
    job.reset();
    sink.reset();
    dest_disk.reset();
  }
};

StorageMover::StorageMover(Options options, base::EventFd cancel)
    : options_(std::move(options)), cancel_(std::move(cancel)) {}

base::Result<std::unique_ptr<StorageMover>> StorageMover::Create(Options options) {
  ASSIGN_OR_RETURN(base::EventFd cancel, base::EventFd::Create());
  return std::unique_ptr<StorageMover>(new StorageMover(std::move(options), std::move(cancel)));
}

StorageMover::~StorageMover() { Abort("the worker is shutting down"); }

bool StorageMover::running() const {
  base::MutexLock lock(mu_);
  return running_;
}

base::Status StorageMover::Start(const MoveRequest& request, const config::VmDefinition& def,
                                 std::vector<storage::TrackingDisk*> disks) {
  last_poll_ns_ = base::MonotonicNanos();
  {
    base::MutexLock lock(mu_);
    if (running_) {
      if (status_.destination == request.destination)
        return base::Ok();  // adopt (a restarted ferryd)
      return base::Error(base::Code::kFailedPrecondition,
                         "a storage move of vm " + definition_.name + " to " + status_.destination +
                             " is already running");
    }
  }
  if (thread_.joinable()) thread_.join();
  if (def.disks.size() != disks.size())
    return base::Error(base::Code::kInternal, "storage move: definition and running disks differ");
  ASSIGN_OR_RETURN(StorageMovePlan plan,
                   PlanStorageMove(def, options_.vm_dir, request.destination));
  RETURN_IF_ERROR(PrepareDestination(plan.destination));
  // Clears a cancel left from an earlier move; an empty eventfd (EAGAIN)
  // is the usual case, not a failure.
  (void)cancel_.Consume();
  {
    base::MutexLock lock(mu_);
    definition_ = def;
    disks_ = std::move(disks);
    status_ = MoveStatus{};
    status_.job_id = request.job_id;
    status_.destination = plan.destination;
    status_.bytes_total = plan.bytes_total;
    status_.bytes_remaining = plan.bytes_total;
    layer_bytes_done_ = 0;
    mirror_done_.assign(disks_.size(), 0);
    mirror_remaining_.assign(disks_.size(), 0);
    mirror_rate_.assign(disks_.size(), 0);
    cancel_reason_.clear();
    running_ = true;
  }
  base::LogInfo("storage move " + request.job_id + ": vm " + def.name + " to " + plan.destination);
  thread_ =
      std::thread([this, plan = std::move(plan), rate = request.max_bytes_per_second]() mutable {
        Run(std::move(plan), rate);
      });
  return base::Ok();
}

MoveStatus StorageMover::Status() {
  last_poll_ns_ = base::MonotonicNanos();
  base::MutexLock lock(mu_);
  MoveStatus s = status_;
  if (!IsTerminal(s.phase)) {
    uint64_t done = layer_bytes_done_, remaining = 0, rate = 0;
    for (size_t i = 0; i < mirror_done_.size(); ++i) {
      done += mirror_done_[i];
      remaining += mirror_remaining_[i];
      rate += uint64_t(mirror_rate_[i]);
    }
    s.bytes_done = done;
    if (s.phase == MovePhase::kMirroring || s.phase == MovePhase::kSwitching) {
      s.bytes_remaining = remaining;
      s.bytes_per_second = double(rate);
    } else {
      s.bytes_remaining = s.bytes_total > done ? s.bytes_total - done : 0;
    }
    if (s.bytes_per_second > 0) s.eta_seconds = double(s.bytes_remaining) / s.bytes_per_second;
  }
  return s;
}

void StorageMover::Abort(const std::string& reason) {
  {
    base::MutexLock lock(mu_);
    if (running_ && cancel_reason_.empty()) cancel_reason_ = reason;
  }
  // eventfd: fails only at counter overflow, readable then anyway.
  (void)cancel_.Signal();
  if (thread_.joinable()) thread_.join();
}

bool StorageMover::LeaseExpired() const {
  return base::MonotonicNanos() - last_poll_ns_.load() > uint64_t(options_.lease_ms) * 1000000ull;
}

void StorageMover::SetPhase(MovePhase phase) {
  base::MutexLock lock(mu_);
  status_.phase = phase;
}

void StorageMover::Run(StorageMovePlan plan, uint64_t max_rate) {
  base::SetThreadName("storage-move");
  const uint64_t start_ns = base::MonotonicNanos();
  base::Status st = RunMove(plan, max_rate);
  base::MutexLock lock(mu_);
  double secs = double(base::MonotonicNanos() - start_ns) / 1e9;
  if (st) {
    status_.phase = MovePhase::kCompleted;
    status_.bytes_done = layer_bytes_done_;
    for (uint64_t d : mirror_done_) status_.bytes_done += d;
    status_.bytes_remaining = 0;
    status_.eta_seconds = 0;
    status_.bytes_per_second = secs > 0 ? double(status_.bytes_done) / secs : 0;
    base::LogInfo("storage move " + status_.job_id + " completed in " + std::to_string(secs) +
                  " s");
  } else {
    base::Error e = st.error();
    if (!cancel_reason_.empty() && e.code() == base::Code::kCancelled) {
      status_.phase = MovePhase::kCancelled;
      e = base::Error(base::Code::kCancelled,
                      "storage move to " + plan.destination + " cancelled: " + cancel_reason_);
    } else {
      status_.phase = MovePhase::kFailed;
    }
    status_.error_code = std::string(base::CodeName(e.code()));
    status_.error = e.message();
    base::LogWarning("storage move " + status_.job_id + ": " + e.ToString());
    // The marker only explains leftover files to an admin; the move's
    // status carries the error either way.
    if (auto marked = WriteMoveMarker(
            plan, std::string(ToString(status_.phase)) + ": " + e.message() +
                      "; the vm runs on its source files; a retry to the same "
                      "destination by the same worker resumes from the saved bitmaps");
        !marked)
      base::LogWarning("storage move " + status_.job_id +
                       ": move marker: " + marked.error().ToString());
  }
  running_ = false;
}

base::Status StorageMover::RunMove(StorageMovePlan& plan, uint64_t max_rate) {
  if (auto st = WriteMoveMarker(plan, "copying"); !st)
    return st.error().Wrap("destination " + plan.destination);
  SetPhase(MovePhase::kCopyingLayers);
  RETURN_IF_ERROR(CopyLayers(plan));
  SetPhase(MovePhase::kMirroring);
  std::vector<std::unique_ptr<DiskRun>> runs;
  base::Status mirrored = Mirror(plan, runs, max_rate);
  if (mirrored) {
    SetPhase(MovePhase::kSwitching);
    mirrored = Switch(plan, runs);
  }
  if (!mirrored) {
    for (auto& r : runs) {
      if (r->job) {
        r->job->Cancel();
        // Cancelled: its result is kCancelled or the failure already
        // returned; the move's error is chosen.
        (void)r->job->Wait();
      }
    }
    SaveBitmaps(runs);  // jobs ended: dirty + unsynced is exact now
    runs.clear();
    // Guest I/O must never stay paused by a failed switch.
    for (auto* d : disks_) {
      if (d->io_paused()) d->ResumeIo();
    }
  }
  return mirrored;
}

base::Status StorageMover::CopyLayers(StorageMovePlan& plan) {
  auto copy = [&](const LayerMove& l, const std::string& rewrite,
                  config::DiskFormat rewrite_format) -> base::Status {
    uint64_t base_done;
    {
      base::MutexLock lock(mu_);
      base_done = layer_bytes_done_;
    }
    storage::SparseCopyOptions o;
    o.cancel_fd = cancel_.fd();
    o.progress = [&](uint64_t done, uint64_t) {
      base::MutexLock lock(mu_);
      layer_bytes_done_ = base_done + done;
    };
    if (auto st = storage::CopySparseFile(l.source, l.dest, o); !st)
      return st.error().Wrap("storage move to " + plan.destination + ": copy " + l.source);
    if (!rewrite.empty())
      RETURN_IF_ERROR(storage::SetQcow2Backing(l.dest, rewrite, rewrite_format));
    base::MutexLock lock(mu_);
    layer_bytes_done_ = base_done + l.file_size;
    return base::Ok();
  };
  for (DiskMove& d : plan.disks) {
    for (const LayerMove& l : d.backing)
      RETURN_IF_ERROR(copy(l, l.rewrite_backing, l.backing_format));
    // A read-only disk never changes: its top is a layer like the others.
    if (d.spec.read_only)
      RETURN_IF_ERROR(
          copy(d.top, d.top_backing_rewritten ? d.top_backing_name : "", d.top_backing_format));
  }
  return base::Ok();
}

base::Status StorageMover::Mirror(StorageMovePlan& plan,
                                  std::vector<std::unique_ptr<DiskRun>>& runs, uint64_t max_rate) {
  for (DiskMove& d : plan.disks) {
    if (d.spec.read_only) continue;
    ASSIGN_OR_RETURN(std::unique_ptr<DiskRun> run, StartDiskMirror(plan, d, max_rate));
    runs.push_back(std::move(run));
  }
  return WaitMirrorsReady(plan, runs);
}

base::Result<std::unique_ptr<StorageMover::DiskRun>> StorageMover::StartDiskMirror(
    StorageMovePlan& plan, DiskMove& d, uint64_t max_rate) {
  auto run = std::make_unique<DiskRun>();
  run->move = &d;
  run->tracking = disks_[d.index];
  const std::string part = PartPath(d.top.dest);
  std::string last_part;
  {
    base::MutexLock lock(mu_);
    last_part = last_part_[run->tracking];
  }
  // The tracking bitmap describes `part` only if this worker mirrored into
  // it before (tracking never stopped since); otherwise start over.
  const bool trust = Exists(part) && last_part == part;
  if (!trust) {
    ::unlink(part.c_str());
    ::unlink(BitmapPath(d.top.dest).c_str());
  }
  const bool qcow2 = d.spec.format == config::DiskFormat::kQcow2;
  const std::string where = "storage move to " + plan.destination;
  RETURN_IF_ERROR(OpenPartSink(*run, trust, where));
  storage::MirrorOptions mo;
  mo.start = trust ? storage::MirrorStart::kFromBitmap : storage::MirrorStart::kFullScan;
  mo.skip_unallocated = qcow2 && !d.top_backing_name.empty();
  mo.max_bytes_per_second = max_rate;
  // Flushed often so an interrupted move keeps most of its progress: only
  // ranges the destination confirmed durable are trusted by a resume.
  mo.flush_interval = kResumeFlushInterval;
  std::optional<storage::DirtyBitmap> saved;  // read by MirrorJob::Start
  if (trust) {
    auto loaded = storage::DirtyBitmap::Load(BitmapPath(d.top.dest));
    if (loaded && loaded->disk_size() == run->tracking->size() &&
        loaded->granularity() == run->tracking->dirty().granularity()) {
      saved = std::move(*loaded);
      mo.resume = &*saved;
    }
    uint64_t left = run->tracking->ResumeBitmap().dirty_bytes();
    base::MutexLock lock(mu_);
    status_.resumed = true;
    status_.bytes_skipped += d.disk_size > left ? d.disk_size - left : 0;
  }
  if (!qcow2) {
    std::string src = d.top.source;
    mo.open_source = [src]() { return storage::OpenRawDisk(src, true); };
  }
  auto job = storage::MirrorJob::Start(*run->tracking, *run->sink, mo);
  if (!job) return job.error().Wrap(where);
  run->job = std::move(*job);
  {
    base::MutexLock lock(mu_);
    last_part_[run->tracking] = part;
  }
  return run;
}

base::Status StorageMover::OpenPartSink(DiskRun& run, bool trust, const std::string& where) {
  const DiskMove& d = *run.move;
  const std::string part = PartPath(d.top.dest);
  if (d.spec.format != config::DiskFormat::kQcow2) {
    storage::FileSinkOptions fo;
    fo.create = true;
    fo.fresh = !trust;
    auto sink = storage::OpenFileSink(part, d.disk_size, fo);
    if (!sink) return sink.error().Wrap(where);
    run.sink = std::move(*sink);
    return base::Ok();
  }
  if (!trust) {
    ASSIGN_OR_RETURN(storage::Qcow2Info info, storage::ReadQcow2Info(d.top.source));
    storage::Qcow2CreateOptions co;
    co.size = d.disk_size;
    co.cluster_size = info.cluster_size;
    co.backing_file = d.top_backing_name;
    co.backing_format = d.top_backing_format;
    if (auto st = storage::CreateQcow2(part, co); !st) return st.error().Wrap(where);
  }
  auto opened = storage::OpenDisk(part, config::DiskFormat::kQcow2, false);
  if (!opened) return opened.error().Wrap(where);
  run.dest_disk = std::move(*opened);
  run.sink = storage::MakeDiskSink(*run.dest_disk, part, !trust && d.top_backing_name.empty());
  return base::Ok();
}

base::Status StorageMover::WaitMirrorsReady(StorageMovePlan& plan,
                                            std::vector<std::unique_ptr<DiskRun>>& runs) {
  uint64_t last_save_ns = base::MonotonicNanos();
  uint64_t ready_ns = 0;  // when every mirror was first seen ready
  for (;;) {
    bool all_ready = true;
    for (auto& r : runs) {
      storage::MirrorProgress p = r->job->Progress();
      {
        base::MutexLock lock(mu_);
        mirror_done_[r->move->index] = p.bytes_copied;
        mirror_remaining_[r->move->index] = p.bytes_remaining;
        mirror_rate_[r->move->index] = p.bytes_per_second;
      }
      if (p.state == storage::MirrorState::kFailed || p.state == storage::MirrorState::kCancelled) {
        base::Status st = r->job->Wait();
        if (!st)
          return st.error().Wrap("storage move to " + plan.destination + ": disk " +
                                 std::to_string(r->move->index) + " (" + r->move->top.source + ")");
        return base::Error(base::Code::kInternal, "mirror ended without an error");
      }
      if (p.state != storage::MirrorState::kReady) all_ready = false;
    }
    if (LeaseExpired())
      return base::Error(base::Code::kAborted, "storage move to " + plan.destination +
                                                   " aborted: ferryd stopped following it (no "
                                                   "status request for " +
                                                   std::to_string(options_.lease_ms / 1000) +
                                                   " s); the vm stays on its source files");
    // Switch only on a status request that came after the copies were ready:
    // ferryd is alive right now, so it will see the switch through (a ferryd
    // that died within its lease must not wake up to a moved VM it never
    // followed to the end).
    if (all_ready && ready_ns == 0) ready_ns = base::MonotonicNanos();
    if (!all_ready) ready_ns = 0;
    if (ready_ns != 0 && last_poll_ns_.load() > ready_ns) return base::Ok();
    if (base::MonotonicNanos() - last_save_ns > options_.bitmap_save_interval_ms * 1000000ull) {
      SaveBitmaps(runs);
      last_save_ns = base::MonotonicNanos();
    }
    auto woke = base::WaitReadable(cancel_.fd(), -1, kPollMs);
    if (woke && *woke) return base::Error(base::Code::kCancelled, "storage move cancelled");
  }
}

void StorageMover::SaveBitmaps(std::vector<std::unique_ptr<DiskRun>>& runs) {
  for (auto& r : runs) {
    if (auto st = r->tracking->ResumeBitmap().Save(BitmapPath(r->move->top.dest)); !st)
      base::LogWarning("save resume bitmap: " + st.error().ToString());
  }
}

base::Status StorageMover::Switch(StorageMovePlan& plan,
                                  std::vector<std::unique_ptr<DiskRun>>& runs) {
  const std::string where = "storage move to " + plan.destination;
  const uint64_t t0 = base::MonotonicNanos();
  for (auto* d : disks_) d->PauseIo();
  // From here guest I/O waits (vCPUs run); every exit path below resumes it.
  for (auto& r : runs) {
    if (auto st = r->job->Complete(cancel_.fd()); !st) return st.error().Wrap(where + ": converge");
  }
  std::vector<std::pair<std::string, std::string>> renamed;  // part -> final
  auto undo_renames = [&] {
    for (auto& [part, final_path] : renamed) {
      // Best effort: the sources stay the disks of record either way, and
      // a retry starts that disk over when its .part is missing.
      if (auto st = Rename(final_path, part); !st)
        base::LogWarning(where + ": undo the rename: " + st.error().ToString());
    }
  };
  for (auto& r : runs) {
    r->job.reset();
    r->sink.reset();
    if (r->dest_disk) {
      if (auto st = r->dest_disk->Flush(); !st) return st.error().Wrap(where);
      r->dest_disk.reset();
    }
    std::string part = PartPath(r->move->top.dest);
    if (auto st = Rename(part, r->move->top.dest); !st) {
      undo_renames();
      return st.error().Wrap(where);
    }
    renamed.emplace_back(part, r->move->top.dest);
  }
  if (auto st = base::SyncParentDirectory(plan.destination + "/x"); !st) {
    undo_renames();
    return st.error().Wrap(where);
  }
  config::VmDefinition old_definition;
  {
    base::MutexLock lock(mu_);
    old_definition = definition_;
  }
  // The commit point: from now on the copies are the disks of record.
  if (auto st = options_.commit(plan.moved_definition); !st) {
    undo_renames();
    return st.error().Wrap(where + ": record the new disk paths");
  }
  auto old_disks = SwitchToCopies(plan, old_definition);
  if (!old_disks) {
    undo_renames();
    return old_disks.error();
  }
  FinishSwitch(plan, runs, t0, std::move(*old_disks));
  return base::Ok();
}

base::Result<std::vector<std::unique_ptr<storage::Disk>>> StorageMover::SwitchToCopies(
    StorageMovePlan& plan, const config::VmDefinition& old_definition) {
  const std::string where = "storage move to " + plan.destination;
  std::vector<std::unique_ptr<storage::Disk>> old_disks(disks_.size());
  for (DiskMove& d : plan.disks) {
    auto opened = storage::OpenDisk(d.top.dest, d.spec.format, d.spec.read_only);
    base::Status st = opened ? base::Ok() : base::Status(opened.error());
    if (st) {
      auto old = disks_[d.index]->SwitchTo(std::move(*opened));
      if (old)
        old_disks[d.index] = std::move(*old);
      else
        st = old.error();
    }
    if (!st) {
      // Back to the sources: they equal the copies (guest I/O is still
      // paused). A failure here is logged: the error returned is the cause.
      for (size_t i = 0; i < old_disks.size(); ++i) {
        if (!old_disks[i]) continue;
        if (auto back = disks_[i]->SwitchTo(std::move(old_disks[i])); !back)
          base::LogError(where + ": back to the source of disk " + std::to_string(i) + ": " +
                         back.error().ToString());
      }
      if (auto back = options_.commit(old_definition); !back)
        base::LogError(where + ": record the old disk paths again: " + back.error().ToString());
      return st.error().Wrap(where + ": open " + d.top.dest);
    }
  }
  return old_disks;
}

void StorageMover::FinishSwitch(StorageMovePlan& plan, std::vector<std::unique_ptr<DiskRun>>& runs,
                                uint64_t t0,
                                std::vector<std::unique_ptr<storage::Disk>> old_disks) {
  const std::string where = "storage move to " + plan.destination;
  for (auto* d : disks_) d->ResumeIo();
  const uint64_t pause_us = (base::MonotonicNanos() - t0) / 1000;
  {
    base::MutexLock lock(mu_);
    definition_ = plan.moved_definition;
    status_.switch_pause_us = pause_us;
    status_.new_paths.clear();
    for (const auto& d : plan.disks) status_.new_paths.push_back(d.top.dest);
    last_part_.clear();
  }
  base::LogInfo(where + ": switched; guest I/O was paused for " + std::to_string(pause_us) + " us");
  // The sources are closed but stay: ferryd removes them, keeping those
  // another VM uses (only ferryd sees the inventory).
  old_disks.clear();
  for (auto& r : runs) ::unlink(BitmapPath(r->move->top.dest).c_str());
  // A copy of the definition travels with the disks (the inventory's vm.toml
  // stays ferryd's registration of the VM); without it the move is still
  // complete, so a failure is only logged.
  if (auto st = base::WriteFileAtomically(plan.destination + "/" + plan.vm_name + ".vm.toml",
                                          config::FormatVmDefinition(plan.moved_definition));
      !st)
    base::LogWarning(where + ": write the copy of vm.toml: " + st.error().ToString());
  ::unlink(MoveMarkerPath(plan).c_str());
}

}  // namespace appliance
