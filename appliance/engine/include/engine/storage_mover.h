// StorageMover: the worker's side of a live storage-only move. It runs in
// ferry-vmm because the worker owns the disk handles: every disk of the VM is
// a storage::TrackingDisk (installed through vm::Machine::TransformDisk), the
// mover copies the read-only backing layers once (CopySparseFile), mirrors each
// writable top layer into "<dest>.part" with a MirrorJob, and then switches:
//
//   1. guest I/O paused on every disk (vCPUs keep running)
//   2. MirrorJob::Complete on every disk: the .part files equal the sources
//      and are durable
//   3. .part files renamed to their final names, directory synced
//   4. commit hook: the new vm.toml written atomically — the commit point.
//      Before it the sources are the disks of record; after it the copies.
//   5. TrackingDisk::SwitchTo(the new files), guest I/O resumed
//   6. the marker removed. The source files stay: ferryd removes them once
//      it sees the move completed, except those another VM still uses (it
//      has the inventory, the worker does not; storage_move_service.h).
// A failure before 4 resumes guest I/O on the sources; the destination files
// stay, clearly marked (.part, the marker) so a retry resumes. A failure at 5
// re-commits the old definition and resumes on the sources.
//
// Destination top layers: raw -> a raw file (FileSink: holes stay holes);
// qcow2 -> a fresh qcow2 over the copied chain (same backing name) written
// through a Disk sink, copying only what the top layer holds (MapExtent;
// unallocated runs fall through to the copied backing chain).
//
// Resume: the tracking disks stay installed after a move ends, so the dirty
// bitmap keeps recording guest writes. A retry to the same destination in the
// same worker starts its mirror from that bitmap (dirty plus not-yet-flushed
// ranges) and copies only what changed. The bitmap is also saved next to the
// .part every few seconds and when the move stops (docs/storage.md rule: it is
// trusted only while tracking continued in this worker).
//
// Lease: ferryd polls Status(); if nobody polled for lease_ms, the mover
// aborts instead of switching, and it switches only after a poll that came
// once every copy was ready, so a move whose ferryd died leaves the VM on its
// source files.
//
// Threads: the public methods are called from the worker's control thread;
// the move runs on its own thread ("storage-move"). The tracking disks are
// borrowed and must outlive the mover (the Machine owns them).
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/event_fd.h"
#include "base/mutex.h"
#include "base/result.h"
#include "config/vm_definition.h"
#include "ipc/storage_move_status.h"
#include "plan/storage_move_plan.h"
#include "storage/tracking_disk.h"

namespace appliance {

class StorageMover {
 public:
  struct Options {
    std::string vm_dir;
    // Called with guest I/O paused to make the moved definition durable
    // (vm.toml). An error aborts the move before the switch.
    std::function<base::Status(const config::VmDefinition&)> commit;
    int lease_ms = 15000;
    uint64_t bitmap_save_interval_ms = 2000;
  };

  static base::Result<std::unique_ptr<StorageMover>> Create(Options options);
  ~StorageMover();  // aborts a running move and joins

  // Starts a move of the VM `definition` describes (read from vm.toml just
  // before); disks[i] is the tracking disk of definition.disks[i]. A running
  // move to the same destination is adopted (Ok; its job id is kept); a
  // running move elsewhere is kFailedPrecondition.
  base::Status Start(const MoveRequest& request, const config::VmDefinition& definition,
                     std::vector<storage::TrackingDisk*> disks);
  // Renews the lease.
  MoveStatus Status();
  bool running() const;
  // Cancels a running move (the VM stays on its sources) and waits for it.
  void Abort(const std::string& reason);

 private:
  struct DiskRun;
  StorageMover(Options options, base::EventFd cancel);
  void Run(StorageMovePlan plan, uint64_t max_rate);
  base::Status RunMove(StorageMovePlan& plan, uint64_t max_rate);
  base::Status CopyLayers(StorageMovePlan& plan);
  base::Status Mirror(StorageMovePlan& plan, std::vector<std::unique_ptr<DiskRun>>& runs,
                      uint64_t max_rate);
  // One disk's mirror into its .part file, resumed from the saved bitmap
  // when this worker mirrored into that file before.
  base::Result<std::unique_ptr<DiskRun>> StartDiskMirror(StorageMovePlan& plan, DiskMove& d,
                                                         uint64_t max_rate);
  base::Status OpenPartSink(DiskRun& run, bool trust, const std::string& where);
  // Until every mirror is ready and ferryd polled after that (or a failure,
  // the lease, a cancel).
  base::Status WaitMirrorsReady(StorageMovePlan& plan, std::vector<std::unique_ptr<DiskRun>>& runs);
  base::Status Switch(StorageMovePlan& plan, std::vector<std::unique_ptr<DiskRun>>& runs);
  // After the commit point: the tracking disks onto the copies; on a
  // failure, back onto the sources and the old definition recorded again.
  // The source disks, closed by the caller.
  base::Result<std::vector<std::unique_ptr<storage::Disk>>> SwitchToCopies(
      StorageMovePlan& plan, const config::VmDefinition& old_definition);
  void FinishSwitch(StorageMovePlan& plan, std::vector<std::unique_ptr<DiskRun>>& runs, uint64_t t0,
                    std::vector<std::unique_ptr<storage::Disk>> old_disks);
  void SaveBitmaps(std::vector<std::unique_ptr<DiskRun>>& runs);
  void SetPhase(MovePhase phase);
  bool LeaseExpired() const;

  Options options_;
  base::EventFd cancel_;
  std::vector<storage::TrackingDisk*> disks_;  // set by Start, read by the move thread

  mutable base::Mutex mu_;  // guards everything below
  MoveStatus status_ GUARDED_BY(mu_);
  bool running_ GUARDED_BY(mu_) = false;
  std::string cancel_reason_ GUARDED_BY(mu_);
  config::VmDefinition definition_ GUARDED_BY(mu_);
  // The .part each tracking disk mirrored into last (in this worker): a
  // retry to the same file may trust that disk's bitmap.
  std::map<storage::TrackingDisk*, std::string> last_part_ GUARDED_BY(mu_);
  uint64_t layer_bytes_done_ GUARDED_BY(mu_) = 0;
  std::vector<uint64_t> mirror_done_ GUARDED_BY(mu_);
  std::vector<uint64_t> mirror_remaining_ GUARDED_BY(mu_);
  std::vector<double> mirror_rate_ GUARDED_BY(mu_);
  std::atomic<uint64_t> last_poll_ns_{0};

  std::thread thread_;
};

}  // namespace appliance
