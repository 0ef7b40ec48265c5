// vm::Machine: one KVM virtual machine — memory, vCPU threads, devices — that
// can be started, paused, resumed, saved to a state file and restored from one
// in a new process, or moved live to another process or host (dirty-page
// harvests, auto-converge throttle, device-state blob, incoming machine).
// ferry-vmm (appliance/) owns exactly one Machine.
//
// A live move, as Machine sees it:
//   source                                  destination
//   EnableDirtyLog; send every page   --->  CreateIncoming; write pages into
//   loop: HarvestDirtyPages, send them      memory_base()
//     (SetThrottle if it won't converge)
//   Pause; HarvestDirtyPages, send them
//   SaveDeviceState  ---------------------> FinishIncoming(blob); Resume
//   (disks must be final and reachable by the destination's definition
//   before FinishIncoming; the source stays paused until the destination
//   runs, then shuts down)
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
#include <string_view>
#include <vector>

#include "base/result.h"
#include "config/vm_definition.h"
#include "storage/disk.h"

namespace vm {

struct MachineOptions {
  config::VmDefinition definition;
  std::string vm_dir;                   // relative disk and program paths resolve here
  std::string console_path;             // serial output is appended to this file
  std::string kvm_device = "/dev/kvm";  // tests point this elsewhere to check errors
};

enum class RunState {
  kCreated = 1,  // built, vCPUs not started
  kRunning = 2,
  kPaused = 3,
  kPoweredOff = 4,  // guest wrote 0 to the power-off port
  kFailed = 5,      // guest or VMM failure; failure() says why
  // Live-move destination (CreateIncoming): guest RAM exists, vCPUs and
  // devices do not yet; FinishIncoming turns it into kPaused, Shutdown into
  // kPoweredOff.
  kIncoming = 6,
};
std::string_view ToString(RunState s);

// How the guest's clock — guest time = rdtsc + params->tsc_offset
// (vm/guest_abi.h) — was carried across the last restore. Decided on the first
// Resume() after Restore() or FinishIncoming().
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

// One disk's requests since the machine was built. A failed request is the
// guest's to handle (it gets the virtio I/O error and the VM keeps running,
// like QEMU's werror=report); these counters and the first failure are how
// the admin hears of it. The first failure is also logged once (base::LogError,
// i.e. the worker's log).
struct DiskStats {
  uint64_t reads = 0, writes = 0, flushes = 0;  // requests that succeeded
  // Requests the disk failed (a damaged image, EIO, ...); discard and
  // write-zeroes count as writes.
  uint64_t read_errors = 0, write_errors = 0, flush_errors = 0;
  // The first failure, "read at offset 8192 (4096 bytes): <cause>", empty if
  // none; when it happened (Unix ms).
  std::string first_error;
  int64_t first_error_unix_ms = 0;
  uint64_t errors() const { return read_errors + write_errors + flush_errors; }
};

struct MachineStats {
  uint64_t memory_bytes = 0;
  uint64_t disk_reads = 0, disk_writes = 0, disk_flushes = 0;
  std::vector<DiskStats> disks;  // in the definition's order
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

// A device-state blob (Machine::SaveDeviceState) is never larger than this
// (the sum of its sections' limits, vm/STATE_FORMAT.md); a receiver can
// refuse a longer one before allocating. Typical blobs are tens of KiB.
inline constexpr uint64_t kMaxDeviceStateBytes = 24ull << 20;

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

  // Live-move destination: a VM whose memory arrives over the network before
  // its state does. Checks the definition's shape and opens the KVM device
  // (so a destination that cannot run the VM fails before any page is sent),
  // allocates guest RAM (memfd, zeroed) of options.definition's memory size,
  // and nothing that needs the disks (the disk files may not exist yet).
  // memory_base()/memory_size() are valid at once and the caller writes the
  // source's pages there (from any thread) before FinishIncoming; state() is
  // kIncoming. Start/Pause/Resume/SaveState/SaveDeviceState/TransformDisk
  // and the dirty-log methods refuse kIncoming with kFailedPrecondition;
  // WaitWhileRunning returns kIncoming at once;
  // disk_count() is 0 until FinishIncoming; SetThrottle is kept for later.
  // Shutdown makes it kPoweredOff (the RAM stays mapped until destruction).
  static base::Result<std::unique_ptr<Machine>> CreateIncoming(const MachineOptions& options);

  // Completes an incoming machine from a device-state blob (SaveDeviceState's
  // output, from the source): verifies the whole blob first (header,
  // trailer, every CRC and field; any defect or truncation is kDataLoss
  // naming what is wrong, like state files; a state file is refused as not
  // a blob), checks its shape against options.definition (memory size, vCPU
  // count, disk count: kFailedPrecondition), opens the disks of
  // options.definition (paths as given now; a missing one is named), creates
  // the KVM VM, vCPUs and devices and restores their state. The TSC-rate rule
  // of Restore applies (kFailedPrecondition beyond 250 ppm). The machine is
  // then kPaused exactly at the source's pause point, and the first Resume()
  // carries guest time over exactly as after Restore (the same tsc_offset
  // rule; the downtime is invisible to the guest's clock). Guest memory is
  // not touched: every page must already be in memory_base(). On any error
  // the machine stays kIncoming with its RAM intact and nothing else built:
  // fix the cause (e.g. copy the disk) and call again, or destroy it. Not
  // incoming (already finished, shut down): kFailedPrecondition.
  virtual base::Status FinishIncoming(std::string_view device_state) = 0;

  // Source side: requires kPaused (else kFailedPrecondition). Everything
  // SaveState writes except guest memory (definition, machine/clock, vCPUs,
  // serial, devices), as one self-checking blob: the state-file container in
  // memory with its own magic ("FRRYDEVS"), so neither is ever taken for the
  // other (vm/STATE_FORMAT.md). About 6 KiB per vCPU plus 1 KiB; at most
  // kMaxDeviceStateBytes. Does not change the machine: it may be called
  // again, and Resume continues the source (e.g. after a failed move).
  virtual base::Result<std::string> SaveDeviceState() = 0;

  // Auto-converge: keeps every vCPU out of KVM_RUN for `percent` (0..99) of
  // its time, slowing how fast the guest dirties memory; 0 = off. Any state
  // (kIncoming included: kept for after FinishIncoming); effective while
  // running; survives Pause/Resume. Outside 0..99: kInvalidArgument and the
  // setting is unchanged. A thread kicks every vCPU once per 10 ms; a kicked
  // vCPU sleeps percent/(100-percent) times what it ran since its last
  // sleep, so the share holds even when a kick comes late. Cost: none at 0;
  // otherwise one signal + KVM_RUN exit per vCPU per 10 ms (≈ 0.4% of a
  // vCPU here) and a throttle thread. The share is of wall time, so the
  // guest's clock keeps running while it sleeps.
  virtual base::Status SetThrottle(int percent) = 0;
  virtual int throttle() const = 0;

  virtual base::Status Start() = 0;  // kCreated -> kRunning
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
  // 4 KiB page (memory_size() / 4096 bits, in uint64_t words), and starts a
  // new interval. Harvesting while the vCPUs run loses nothing, provided the
  // caller reads a page's contents after the harvest that reported it: a
  // write after the harvest lands in the next one (manual-protect GET then
  // CLEAR; vm/src/dirty_log.h). Pages may be over-reported, never missed.
  // Cost per harvest: one bitmap allocation (memory_size() / 32768 bytes),
  // KVM_GET_DIRTY_LOG (≈ 0.01 ms for 1 GiB) and a CLEAR proportional to the
  // pages found dirty (≈ 3.5 ms for a fully dirty 1 GiB). Refused while
  // kIncoming.
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
  // The byte ranges of guest RAM that were ever written (page-aligned,
  // ascending); everything else reads as zeros. Found with SEEK_DATA/SEEK_HOLE
  // on the memfd, so never-touched RAM is neither read nor faulted in (reading
  // it page by page would allocate it). A live move's first pass uses it.
  struct MemoryRange {
    uint64_t offset = 0;
    uint64_t length = 0;
  };
  virtual base::Result<std::vector<MemoryRange>> PopulatedMemory() const = 0;
};

}  // namespace vm
