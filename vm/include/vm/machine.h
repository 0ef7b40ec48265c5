// vm::Machine: one KVM virtual machine — memory, vCPU threads, devices — that
// can be started, paused, resumed, saved to a state file and restored from one
// in a new process. ferry-vmm (appliance/) owns exactly one Machine.
//
// Threads: each vCPU runs on its own thread ("vcpu0", ...). The public methods
// are called from one control thread; they are not re-entrant. vCPU threads
// are kicked out of KVM_RUN with SIGUSR1 (a no-op handler is installed on
// first Start); the process must not use SIGUSR1 for anything else.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "config/vm_definition.h"
#include "storage/disk.h"

namespace vm {

struct MachineOptions {
  config::VmDefinition definition;
  std::string vm_dir;        // relative disk and program paths resolve here
  std::string console_path;  // serial output is appended to this file
  std::string kvm_device = "/dev/kvm";  // tests point this elsewhere to check errors
};

enum class RunState {
  kCreated = 1,  // built, vCPUs not started
  kRunning = 2,
  kPaused = 3,
  kPoweredOff = 4,  // guest wrote 0 to the power-off port
  kFailed = 5,      // guest or VMM failure; failure() says why
};
std::string_view ToString(RunState s);

// How the guest's clock — guest time = rdtsc + params->tsc_offset
// (vm/guest_abi.h) — was carried across the last restore. Decided on the first
// Resume() after Restore().
enum class GuestClockSync {
  kNotRestored = 1,  // booted fresh, or restored but not resumed yet
  // KVM took the saved IA32_TSC (VMX/SVM): the raw TSC continues, and
  // tsc_offset moved only by the microseconds between writing and reading it.
  kTscWrite = 2,
  // KVM ignored the TSC write (PVM: ring-3 rdtsc reads the host's TSC), so
  // the raw TSC jumped; tsc_offset absorbed the jump.
  kTscOffset = 3,
};
std::string_view ToString(GuestClockSync s);

struct MachineStats {
  uint64_t memory_bytes = 0;
  uint64_t disk_reads = 0, disk_writes = 0, disk_flushes = 0;
  uint64_t exits = 0;
  uint64_t unknown_accesses = 0;  // port/MMIO accesses no device claimed
  // Which mechanism kept guest time continuous across the last restore. Guest
  // time continues either way; only the raw TSC differs (next field).
  GuestClockSync guest_clock = GuestClockSync::kNotRestored;
  // False once a restore's saved guest TSC was not taken by KVM (read back
  // more than 50 ms away from the written value): the raw rdtsc of a guest
  // that ignores tsc_offset jumped by the time spent saved. Within 50 ms the
  // two cases look alike and are reported as kTscWrite; guest time is right
  // in both, because the offset rule does not depend on this test.
  bool guest_tsc_continuous = true;
  // How far the raw TSC moved between the save and the restore's resume
  // point, in TSC ticks, as tsc_offset compensated it (0 before a restore;
  // microseconds' worth when kTscWrite).
  int64_t restore_tsc_jump_ticks = 0;
};

class Machine {
 public:
  virtual ~Machine() = default;

  // Builds a fresh VM: checks /dev/kvm, loads the program, opens the disks.
  static base::Result<std::unique_ptr<Machine>> Create(const MachineOptions& options);
  // Builds a VM from a state file written by SaveState; it starts paused at
  // exactly the saved point. Any corruption of the file is a kDataLoss error
  // and no VM is built. options.definition must have the saved VM's shape
  // (memory size, vCPU count, disk count) — else kFailedPrecondition; its disk
  // paths are used as given (they may differ from the source's).
  //
  // Guest time (rdtsc + params->tsc_offset, vm/guest_abi.h) continues from
  // the saved point: the first Resume(), with every vCPU still stopped, sets
  // the KVM clock and each vCPU's IA32_TSC to their saved values, reads the
  // TSC back and sets tsc_offset = saved TSC + saved offset - TSC read back.
  // Where the TSC write took (VMX/SVM) that moves the offset by microseconds;
  // where KVM ignores it (PVM) the offset absorbs the jump. Either way the
  // time spent saved is invisible to a guest that reads its clock this way
  // (MachineStats::guest_clock says which case applied). A file saved on a
  // host whose TSC runs more than 250 ppm faster or slower than this one's is
  // refused (kFailedPrecondition): ferry does not scale guest time.
  static base::Result<std::unique_ptr<Machine>> Restore(const MachineOptions& options,
                                                        const std::string& state_path);

  virtual base::Status Start() = 0;   // kCreated -> kRunning
  // Stops every vCPU outside KVM_RUN with device I/O drained. Idempotent.
  // From kCreated it only marks the machine paused (Resume then starts it).
  virtual base::Status Pause() = 0;
  virtual base::Status Resume() = 0;  // kPaused -> kRunning
  // Requires kPaused. Writes the complete state (vCPUs, devices, clock,
  // memory) atomically: a temp file renamed into place after fsync.
  virtual base::Status SaveState(const std::string& path) = 0;
  // Stops vCPU threads and releases the VM; the Machine is unusable after.
  virtual void Shutdown() = 0;

  virtual RunState state() const = 0;
  virtual std::string failure() const = 0;
  virtual MachineStats stats() const = 0;
  // Blocks until the state leaves kRunning or timeout_ms passes (-1: forever).
  virtual RunState WaitWhileRunning(int timeout_ms) = 0;

  // Dirty-page tracking (for live moves): after EnableDirtyLog, each
  // HarvestDirtyPages returns the pages written since the previous harvest —
  // by the guest (KVM's dirty log) and by the VMM's devices — one bit per
  // 4 KiB page, and starts a new interval.
  virtual base::Status EnableDirtyLog() = 0;
  virtual base::Result<std::vector<uint64_t>> HarvestDirtyPages() = 0;
  virtual base::Status DisableDirtyLog() = 0;
  // Replaces the storage::Disk under running disk `index` (the order of
  // definition.disks) while the guest's I/O to it is paused; vCPUs keep
  // running. fn runs with the device's mutex held, so no guest request to
  // this disk runs meanwhile and a vCPU that touches the device waits: keep
  // it short (open files, wrap; no bulk I/O). fn gets the current disk and
  // returns the disk to use from now on; it may move `current` into a wrapper
  // (e.g. a storage::TrackingDisk) and return the wrapper, or return a new
  // disk and leave `current` to be destroyed. On error fn must leave
  // `current` intact (the device keeps it). The new disk must report the
  // same size() and read_only() as the old one (the guest was told them),
  // else kFailedPrecondition and the old disk stays. Any state (running,
  // paused, created); kOutOfRange for a bad index. Same thread rule as the
  // other methods.
  using DiskTransform = std::function<base::Result<std::unique_ptr<storage::Disk>>(
      std::unique_ptr<storage::Disk>& current)>;
  virtual base::Status TransformDisk(size_t index, const DiskTransform& fn) = 0;
  virtual size_t disk_count() const = 0;

  // Host view of guest RAM (valid for the Machine's lifetime).
  virtual uint8_t* memory_base() = 0;
  virtual uint64_t memory_size() const = 0;
};

}  // namespace vm
