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
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "config/vm_definition.h"

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

struct MachineStats {
  uint64_t memory_bytes = 0;
  uint64_t disk_reads = 0, disk_writes = 0, disk_flushes = 0;
  uint64_t exits = 0;
  uint64_t unknown_accesses = 0;  // port/MMIO accesses no device claimed
  // False once a restore's saved guest TSC was not taken by KVM (read back
  // more than 50 ms away from the written value): on a PVM host (PLATFORM.md)
  // ring-3 guests read the host TSC directly, so their TSC jumps by the time
  // spent saved. True on hosts where KVM offsets the TSC.
  bool guest_tsc_continuous = true;
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
  // paths are used as given (they may differ from the source's). The guest's
  // TSC and KVM clock are set back to their saved values by the first
  // Resume(), so the time spent saved is invisible to the guest where the
  // host allows it (see MachineStats::guest_tsc_continuous).
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
  // Host view of guest RAM (valid for the Machine's lifetime).
  virtual uint8_t* memory_base() = 0;
  virtual uint64_t memory_size() const = 0;
};

}  // namespace vm
