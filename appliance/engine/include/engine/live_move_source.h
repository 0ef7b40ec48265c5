// LiveMoveSource: the source worker's side of a shared-nothing live move
// (docs/live_move.md): connects the data streams to the incoming worker,
// copies the read-only checkpoint layers, mirrors each writable disk layer
// through a PeerSink while memory is pre-copied in rounds from the dirty log,
// decides the switchover from the measured rates, pauses the VM, sends the
// rest and the device state, and resolves the outcome with the destination.
//
// The VM runs on exactly one host: before DeviceState is sent any failure
// resumes the VM here; after it, the VM is resumed here only once the
// destination says it aborted (its ferryd's Status answer), and shut down
// only once it says it committed.
//
// Threads: the public methods are called from the worker's control thread;
// the move runs on its own thread ("live-move") plus one sender thread per
// stream and a reader of stream 0. The Machine and the tracking disks are
// borrowed and must outlive the mover.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "config/vm_definition.h"
#include "protocol/live_move_types.h"
#include "storage/tracking_disk.h"
#include "vm/machine.h"

namespace appliance {

class LiveMoveSource {
 public:
  static constexpr uint32_t kDefaultDowntimeMs = 300;

  struct Options {
    vm::Machine* machine = nullptr;
    // disks[i]: the tracking disk the worker installed under disk i
    // (definition.disks order).
    std::vector<storage::TrackingDisk*> disks;
    config::VmDefinition definition;  // as in vm.toml when the move started
    std::string vm_dir;               // relative disk paths resolve here
    // Pause/resume the VM through the worker (it keeps its watcher in step).
    std::function<base::Status()> pause;
    std::function<base::Status()> resume;
    // Signalled (eventfd) whenever the move reaches a terminal phase; the
    // worker's control loop then asks committed().
    int notify_fd = -1;
    // No Status() call for this long before switchover: abort (ferryd died).
    int lease_ms = 15000;
    // After the device state went out and the destination fell silent: how
    // long its ferryd's Status is asked before the move is declared in
    // doubt (the VM stays paused here).
    int resolve_retry_ms = 60000;
    // The disk mirrors' copy rate while the guest does disk I/O
    // (storage::MirrorOptions::min_bytes_per_second); full speed while it
    // does none. Four times move-storage's floor: a live move's copy only
    // reads the source's device, and at 16 MiB/s a busy 1 GiB disk took a
    // minute. live_move_bench (disk guest, 256 MiB of data; docs/live_move.md):
    // 16 MiB/s 16 s; 64 MiB/s 4 s with the guest's write rate unchanged in
    // two runs; 256 MiB/s 1.1 s but the guest at 0.53-0.96x.
    uint64_t busy_guest_copy_rate = 64 << 20;
  };

  // Starts the move thread; errors here are bad requests only.
  static base::Result<std::unique_ptr<LiveMoveSource>> Start(Options options,
                                                             LiveMoveRequest request);
  ~LiveMoveSource();  // aborts a running move (as Abort) and joins

  // Current progress; renews the lease.
  LiveMoveStatus Status();
  // Cancels a move that has not sent its device state (the VM keeps running
  // here) and waits for it to end; after that point it only waits for the
  // resolution. Idempotent.
  void Abort(const std::string& reason);
  // The destination committed: this worker must shut its VM down and exit
  // with the exit record state "moved".
  bool committed() const;
  bool running() const;

 private:
  class Impl;
  explicit LiveMoveSource(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace appliance
