// Machine assembly: builds a VM from a definition (Create), a state file
// (Restore) or a live move's memory plus device-state blob (CreateIncoming +
// FinishIncoming) out of the parts in this directory, and implements the
// Machine interface on top of VcpuSet (run control), VcpuThrottle, DirtyLog
// and machine_state.
#include "vm/machine.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "base/escape.h"
#include "base/log.h"
#include "boot.h"
#include "cpu_state.h"
#include "device_state_blob.h"
#include "dirty_log.h"
#include "guest_memory.h"
#include "io_bus.h"
#include "kvm.h"
#include "machine_state.h"
#include "serial.h"
#include "storage/disk.h"
#include "vcpu_set.h"
#include "vcpu_throttle.h"
#include "virtio_blk.h"
#include "vm/guest_abi.h"

namespace vm {
namespace {

constexpr uint32_t kRamSlot = 0;
// KVM_SET_TSS_ADDR wants three pages outside RAM and MMIO (VMX uses them for
// real mode only; set anyway, as kvmtool and QEMU do).
constexpr uint64_t kKvmTssGpa = 0xfffbd000;

// config/ validates vm.toml against the memory this VMM can build; the two
// must describe the same layout (config cannot include vm/, so they are tied
// here).
static_assert(config::kVmMmioWindowGpa == FERRY_VIRTIO_MMIO_GPA);
static_assert(config::kMaxVmMemoryBytes <= FERRY_VIRTIO_MMIO_GPA,
              "guest RAM must end below the virtio-mmio window");
static_assert(config::kMinVmMemoryBytes >= FERRY_PROGRAM_GPA + (2ull << 20),
              "the program and at least one free 2 MiB page must fit");

// A restored guest keeps the tsc_khz it was given at boot (its clock code
// caches it), so the host's TSC must run at that rate. KVM itself treats
// frequencies within 250 ppm as equal (its tsc_tolerance_ppm); so do we.
// 250 ppm is at most 0.9 s per hour of guest time.
constexpr uint64_t kTscRateTolerancePpm = 250;

// A TSC read back within this of the value just written means KVM took the
// write (the read is microseconds later). Only used to report what happened:
// the tsc_offset rule is right either way.
constexpr uint64_t kTscTakenToleranceMs = 50;

std::string ResolvePath(const std::string& dir, const std::string& path) {
  if (path.empty() || path[0] == '/' || dir.empty()) return path;
  return dir + "/" + path;
}

base::Status CheckShape(const config::VmDefinition& def) {
  if (def.vcpus < 1 || def.vcpus > FERRY_MAX_VCPUS)
    return base::Error(base::Code::kInvalidArgument,
                       "vm " + def.name + ": " + std::to_string(def.vcpus) + " vCPUs; 1.." +
                           std::to_string(FERRY_MAX_VCPUS) + " are supported");
  if (def.disks.size() > FERRY_MAX_DISKS)
    return base::Error(base::Code::kInvalidArgument,
                       "vm " + def.name + ": " + std::to_string(def.disks.size()) +
                           " disks; at most " + std::to_string(FERRY_MAX_DISKS) + " are supported");
  // RAM is one slot at GPA 0 and must stay below the virtio-mmio window.
  // config::ValidateVmDefinition applies the same limits to vm.toml.
  if (def.memory_bytes < config::kMinVmMemoryBytes || def.memory_bytes > config::kMaxVmMemoryBytes)
    return base::Error(base::Code::kInvalidArgument,
                       "vm " + def.name + ": memory of " + std::to_string(def.memory_bytes >> 20) +
                           " MiB is outside " + std::to_string(config::kMinVmMemoryBytes >> 20) +
                           ".." + std::to_string(config::kMaxVmMemoryBytes >> 20) +
                           " MiB (RAM must end below the MMIO window at 0xd0000000)");
  return base::Ok();
}

// The saved VM (a state file's or a blob's snapshot) must have the shape of
// the definition it is restored under.
base::Status CheckSnapshotShape(const config::VmDefinition& def, const MachineSnapshot& s,
                                const std::string& source) {
  auto saved_def = config::ParseVmDefinition(s.definition_text, source + " (saved definition)");
  if (!saved_def) return saved_def.error();
  auto mismatch = [&](const std::string& what) {
    return base::Error(base::Code::kFailedPrecondition, "the VM in " + source + " has " + what);
  };
  if (s.memory_bytes != def.memory_bytes || saved_def->memory_bytes != def.memory_bytes)
    return mismatch(std::to_string(s.memory_bytes) + " bytes of memory, the definition " +
                    std::to_string(def.memory_bytes));
  if (s.vcpus.size() != def.vcpus || saved_def->vcpus != def.vcpus)
    return mismatch(std::to_string(s.vcpus.size()) + " vCPUs, the definition " +
                    std::to_string(def.vcpus));
  if (s.devices.size() != def.disks.size() || saved_def->disks.size() != def.disks.size())
    return mismatch(std::to_string(s.devices.size()) + " disks, the definition " +
                    std::to_string(def.disks.size()));
  return base::Ok();
}

class MachineImpl final : public Machine {
 public:
  // Takes the KVM system and the guest RAM the machine will run on.
  MachineImpl(const MachineOptions& options, KvmSystem kvm, std::unique_ptr<GuestMemory> memory)
      : options_(options),
        memory_(std::move(memory)),
        kvm_(std::make_unique<KvmSystem>(std::move(kvm))) {}
  ~MachineImpl() override { Shutdown(); }

  // Shared by Create, Restore and FinishIncoming: KVM VM, RAM slot, vCPUs
  // with CPUID, serial, disks, bus and the vCPU threads (not started).
  base::Status Build();
  base::Status BootFresh();
  base::Status ApplySnapshot(const MachineSnapshot& snapshot);
  void MarkIncoming() { incoming_ = true; }

  base::Status Start() override;
  base::Status Pause() override;
  base::Status Resume() override;
  base::Status SaveState(const std::string& path) override;
  void Shutdown() override;

  RunState state() const override;
  std::string failure() const override;
  MachineStats stats() const override;
  RunState WaitWhileRunning(int timeout_ms) override {
    if (!vcpu_set_) return state();
    return vcpu_set_->WaitWhileRunning(timeout_ms);
  }

  base::Status EnableDirtyLog() override;
  base::Result<std::vector<uint64_t>> HarvestDirtyPages() override;
  base::Status DisableDirtyLog() override;
  base::Status TransformDisk(size_t index, const DiskTransform& fn) override;
  size_t disk_count() const override { return disks_.size(); }
  uint8_t* memory_base() override { return memory_->base(); }
  uint64_t memory_size() const override { return memory_->size(); }
  base::Result<std::vector<MemoryRange>> PopulatedMemory() const override;

  base::Status FinishIncoming(std::string_view device_state) override;
  base::Result<std::string> SaveDeviceState() override;
  base::Status SetThrottle(int percent) override;
  int throttle() const override { return throttle_percent_; }

 private:
  // Ok if the machine is built (not incoming, not shut down), else the
  // kFailedPrecondition error for `op`.
  base::Status CheckBuilt(const char* op) const;
  base::Status SetCpuid(KvmVcpu& vcpu, const std::vector<kvm_cpuid_entry2>& supported);
  base::Status OpenDisks();
  base::Status CheckTscRate(uint64_t saved_khz);
  base::Status RestoreClocks();
  // Everything SaveState and SaveDeviceState write, memory aside. Paused only.
  base::Result<MachineSnapshot> CaptureSnapshot();
  // Undoes a Build that failed half-way or was never used, back to bare RAM
  // and the KVM system (FinishIncoming's retry point).
  void Unbuild();

  MachineOptions options_;
  // Declaration order is destruction order reversed: the vCPU threads
  // (vcpu_set_, last) stop first; devices go before the memory they borrow;
  // the memory outlives the VM fd that maps it.
  std::unique_ptr<GuestMemory> memory_;
  std::unique_ptr<KvmSystem> kvm_;
  std::unique_ptr<KvmVm> vm_;
  std::vector<KvmVcpu> vcpus_;
  VcpuStateLayout layout_;
  // The TSC rate the guest was told (params->tsc_khz): this host's at a fresh
  // boot, the saved one after a restore (within kTscRateTolerancePpm of this
  // host's), so a chain of moves keeps comparing against what the guest uses.
  uint64_t tsc_khz_ = 0;
  std::unique_ptr<Serial> serial_;
  std::vector<std::unique_ptr<VirtioBlk>> disks_;
  std::unique_ptr<IoBus> bus_;
  std::unique_ptr<DirtyLog> dirty_log_;

  // The guest's TSCs and KVM clock as of the last pause (or as restored).
  std::vector<uint64_t> paused_tsc_;
  uint64_t paused_clock_ns_ = 0;
  // Set by Restore: write paused_tsc_/paused_clock_ns_ into KVM and set
  // tsc_offset right before the vCPUs next run, so the guest's time continues
  // from the saved point.
  bool clocks_pending_ = false;
  bool tsc_continuous_ = true;
  GuestClockSync guest_clock_ = GuestClockSync::kNotRestored;
  int64_t restore_tsc_jump_ = 0;

  // kIncoming: RAM exists, nothing else is built until FinishIncoming.
  bool incoming_ = false;
  bool shut_down_ = false;
  int throttle_percent_ = 0;

  std::unique_ptr<VcpuSet> vcpu_set_;
  // Declared after vcpu_set_, which it kicks: its thread stops first.
  std::unique_ptr<VcpuThrottle> throttle_;
};

base::Status MachineImpl::Build() {
  const config::VmDefinition& def = options_.definition;
  ASSIGN_OR_RETURN(KvmVm vm, kvm_->CreateVm());
  vm_ = std::make_unique<KvmVm>(std::move(vm));
  if (vm_->CheckExtension(KVM_CAP_SET_TSS_ADDR)) RETURN_IF_ERROR(vm_->SetTssAddr(kKvmTssGpa));
  bool manual_protect = false;
  if (vm_->CheckExtension(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) &
      KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE) {
    // Without KVM_DIRTY_LOG_INITIALLY_SET: the first harvest reports only
    // pages written after EnableDirtyLog.
    RETURN_IF_ERROR(
        vm_->EnableCap(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE));
    manual_protect = true;
  }
  RETURN_IF_ERROR(vm_->SetMemorySlot(kRamSlot, 0, memory_->size(), memory_->base(), 0));
  dirty_log_ = std::make_unique<DirtyLog>(*vm_, *memory_, kRamSlot, manual_protect);

  ASSIGN_OR_RETURN(std::vector<kvm_cpuid_entry2> cpuid, kvm_->SupportedCpuid());
  for (uint32_t i = 0; i < def.vcpus; ++i) {
    ASSIGN_OR_RETURN(KvmVcpu vcpu, vm_->CreateVcpu(i, kvm_->vcpu_mmap_size()));
    RETURN_IF_ERROR(SetCpuid(vcpu, cpuid));
    vcpus_.push_back(std::move(vcpu));
  }
  ASSIGN_OR_RETURN(layout_, ProbeVcpuStateLayout(*kvm_, *vm_, vcpus_[0]));
  ASSIGN_OR_RETURN(int khz, vcpus_[0].IoctlValue(KVM_GET_TSC_KHZ, 0, "KVM_GET_TSC_KHZ"));
  tsc_khz_ = static_cast<uint64_t>(khz);

  ASSIGN_OR_RETURN(Serial serial, Serial::Open(options_.console_path));
  serial_ = std::make_unique<Serial>(std::move(serial));
  bus_ = std::make_unique<IoBus>(*serial_);
  RETURN_IF_ERROR(OpenDisks());

  std::vector<KvmVcpu*> ptrs;
  for (auto& v : vcpus_) ptrs.push_back(&v);
  vcpu_set_ = std::make_unique<VcpuSet>(std::move(ptrs), *bus_);
  throttle_ = std::make_unique<VcpuThrottle>(*vcpu_set_);
  if (throttle_percent_ > 0) throttle_->Set(throttle_percent_);
  return base::Ok();
}

void MachineImpl::Unbuild() {
  // Reverse order of Build; nothing has run (the vCPU threads never started).
  throttle_.reset();
  vcpu_set_.reset();
  bus_.reset();
  disks_.clear();
  serial_.reset();
  dirty_log_.reset();
  vcpus_.clear();
  vm_.reset();
  layout_ = VcpuStateLayout{};
  tsc_khz_ = 0;
  paused_tsc_.clear();
  paused_clock_ns_ = 0;
  clocks_pending_ = false;
}

base::Status MachineImpl::CheckBuilt(const char* op) const {
  if (incoming_)
    return base::Error(
        base::Code::kFailedPrecondition,
        std::string(op) + ": machine is incoming (FinishIncoming has not completed)");
  if (!vcpu_set_)
    return base::Error(base::Code::kFailedPrecondition,
                       std::string(op) + ": machine was shut down");
  return base::Ok();
}

RunState MachineImpl::state() const {
  if (incoming_) return RunState::kIncoming;
  if (!vcpu_set_) return shut_down_ ? RunState::kPoweredOff : RunState::kFailed;
  return vcpu_set_->state();
}

std::string MachineImpl::failure() const { return vcpu_set_ ? vcpu_set_->failure() : ""; }

base::Status MachineImpl::EnableDirtyLog() {
  RETURN_IF_ERROR(CheckBuilt("enable dirty log"));
  return dirty_log_->Enable();
}

base::Result<std::vector<uint64_t>> MachineImpl::HarvestDirtyPages() {
  RETURN_IF_ERROR(CheckBuilt("harvest dirty pages"));
  return dirty_log_->Harvest();
}

base::Status MachineImpl::DisableDirtyLog() {
  RETURN_IF_ERROR(CheckBuilt("disable dirty log"));
  return dirty_log_->Disable();
}

base::Status MachineImpl::SetThrottle(int percent) {
  if (percent < 0 || percent > 99)
    return base::Error(base::Code::kInvalidArgument,
                       "throttle of " + std::to_string(percent) + "%; 0..99 are valid (0 = off)");
  throttle_percent_ = percent;
  if (throttle_) throttle_->Set(percent);
  return base::Ok();
}

base::Status MachineImpl::SetCpuid(KvmVcpu& vcpu, const std::vector<kvm_cpuid_entry2>& supported) {
  std::vector<uint64_t> buf((sizeof(kvm_cpuid2) + supported.size() * sizeof(kvm_cpuid_entry2)) / 8 +
                            1);
  auto* cpuid = reinterpret_cast<kvm_cpuid2*>(buf.data());
  cpuid->nent = static_cast<uint32_t>(supported.size());
  for (size_t i = 0; i < supported.size(); ++i) {
    kvm_cpuid_entry2 e = supported[i];
    // Each vCPU reports its own APIC ID (leaf 1 EBX[31:24], x2APIC leaves).
    if (e.function == 1) e.ebx = (e.ebx & 0x00ffffff) | (vcpu.index() << 24);
    if (e.function == 0xb || e.function == 0x1f) e.edx = vcpu.index();
    cpuid->entries[i] = e;
  }
  return vcpu.Ioctl(KVM_SET_CPUID2, cpuid, "KVM_SET_CPUID2");
}

base::Status MachineImpl::OpenDisks() {
  const auto& disks = options_.definition.disks;
  for (size_t i = 0; i < disks.size(); ++i) {
    const config::DiskSpec& spec = disks[i];
    std::string path = ResolvePath(options_.vm_dir, spec.path);
    auto disk = storage::OpenDisk(path, spec.format, spec.read_only);
    if (!disk) return disk.error().Wrap("disk " + std::to_string(i));
    disks_.push_back(std::make_unique<VirtioBlk>(
        *memory_, std::move(*disk),
        "disk " + std::to_string(i) + " (" + base::Escaped(path) + ")"));
    bus_->AddMmio(FERRY_VIRTIO_MMIO_GPA + i * FERRY_VIRTIO_MMIO_STRIDE, FERRY_VIRTIO_MMIO_STRIDE,
                  *disks_.back());
  }
  return base::Ok();
}

base::Status MachineImpl::BootFresh() {
  const config::VmDefinition& def = options_.definition;
  RETURN_IF_ERROR(WriteBootTables(*memory_));
  ASSIGN_OR_RETURN(uint64_t program_end,
                   LoadProgram(*memory_, ResolvePath(options_.vm_dir, def.program)));
  BootParams params;
  params.memory_bytes = memory_->size();
  params.tsc_khz = tsc_khz_;
  params.vcpu_count = def.vcpus;
  params.disk_count = static_cast<uint32_t>(def.disks.size());
  params.cmdline = def.cmdline;
  RETURN_IF_ERROR(WriteParams(*memory_, params, program_end));
  for (auto& vcpu : vcpus_) {
    kvm_sregs2 sregs{};
    RETURN_IF_ERROR(vcpu.Ioctl(KVM_GET_SREGS2, &sregs, "KVM_GET_SREGS2"));
    SetInitialSregs(sregs);
    RETURN_IF_ERROR(vcpu.Ioctl(KVM_SET_SREGS2, &sregs, "KVM_SET_SREGS2"));
    kvm_regs regs = InitialRegs(vcpu.index());
    RETURN_IF_ERROR(vcpu.Ioctl(KVM_SET_REGS, &regs, "KVM_SET_REGS"));
  }
  return base::Ok();
}

base::Status MachineImpl::CheckTscRate(uint64_t saved_khz) {
  uint64_t host_khz = tsc_khz_;
  uint64_t diff = saved_khz > host_khz ? saved_khz - host_khz : host_khz - saved_khz;
  // diff / host_khz > ppm / 1e6, in integers (kHz values are < 2^32).
  if (saved_khz == 0 || diff * 1000000 > kTscRateTolerancePpm * host_khz) {
    char msg[320];
    std::snprintf(msg, sizeof msg,
                  "the saved guest's TSC ran at %" PRIu64 " kHz and this host's runs at %" PRIu64
                  " kHz, more than %" PRIu64
                  " ppm apart: the guest times itself with the rate it was given at boot and "
                  "ferry does not scale guest time, so restore it on a host with the same TSC "
                  "frequency",
                  saved_khz, host_khz, kTscRateTolerancePpm);
    return base::Error(base::Code::kFailedPrecondition, msg);
  }
  tsc_khz_ = saved_khz;
  return base::Ok();
}

base::Status MachineImpl::ApplySnapshot(const MachineSnapshot& s) {
  RETURN_IF_ERROR(CheckTscRate(s.tsc_khz));
  for (size_t i = 0; i < vcpus_.size(); ++i) {
    if (auto st = ApplyVcpuState(vcpus_[i], s.vcpus[i], layout_); !st)
      return st.error().Wrap("restore vcpu" + std::to_string(i));
  }
  if (auto st = serial_->RestoreState(s.serial); !st) return st.error().Wrap("restore serial port");
  for (size_t i = 0; i < disks_.size(); ++i) {
    if (auto st = disks_[i]->RestoreState(s.devices[i]); !st)
      return st.error().Wrap("restore disk " + std::to_string(i));
  }
  paused_tsc_.clear();
  for (const auto& v : s.vcpus) paused_tsc_.push_back(v.tsc);
  paused_clock_ns_ = s.kvm_clock_ns;
  clocks_pending_ = true;
  vcpu_set_->MarkPaused();
  return base::Ok();
}

base::Status MachineImpl::RestoreClocks() {
  if (!clocks_pending_) return base::Ok();
  // Every vCPU is stopped here (kPaused), so the guest cannot see the clock
  // half-updated; guest_abi.h says how it copes with being paused mid-read.
  RETURN_IF_ERROR(vm_->SetClock(paused_clock_ns_));
  // Every vCPU gets the same value back to back; KVM keeps TSCs written within
  // a second of each other in sync.
  for (size_t i = 0; i < vcpus_.size(); ++i) RETURN_IF_ERROR(WriteTsc(vcpus_[i], paused_tsc_[i]));
  // Some hosts ignore the write: on PVM the guest runs rdtsc natively in
  // ring 3 and always sees the host's TSC. Whatever happened, `now` is the
  // TSC the guest's rdtsc will continue from.
  ASSIGN_OR_RETURN(uint64_t now, ReadTsc(vcpus_[0]));
  ASSIGN_OR_RETURN(int64_t saved_offset, ReadTscOffset(*memory_));
  // The one rule (guest_abi.h): guest time at the pause was saved TSC + saved
  // offset; from now on it is rdtsc + new offset, and the two meet at `now`.
  // Unsigned arithmetic: the values wrap modulo 2^64 like the guest's sum.
  uint64_t saved_guest_time = paused_tsc_[0] + static_cast<uint64_t>(saved_offset);
  auto new_offset = static_cast<int64_t>(saved_guest_time - now);
  RETURN_IF_ERROR(WriteTscOffset(*memory_, new_offset));
  restore_tsc_jump_ = static_cast<int64_t>(now - paused_tsc_[0]);

  // Reporting only: did the TSC write take? The write and the read are
  // microseconds apart.
  bool taken = restore_tsc_jump_ >= 0 &&
               static_cast<uint64_t>(restore_tsc_jump_) <= tsc_khz_ * kTscTakenToleranceMs;
  tsc_continuous_ = taken;
  guest_clock_ = taken ? GuestClockSync::kTscWrite : GuestClockSync::kTscOffset;
  if (!taken) {
    char msg[320];
    std::snprintf(msg, sizeof msg,
                  "KVM did not take the restored guest TSC (wrote %" PRIu64 ", reads %" PRIu64
                  "): the raw TSC jumped by %.1f ms; params->tsc_offset (now %" PRId64
                  ") compensates, so guest time continues",
                  paused_tsc_[0], now,
                  static_cast<double>(restore_tsc_jump_) / static_cast<double>(tsc_khz_),
                  new_offset);
    base::LogInfo(msg);
  }
  clocks_pending_ = false;
  return base::Ok();
}

base::Status MachineImpl::Start() {
  RETURN_IF_ERROR(CheckBuilt("start"));
  return vcpu_set_->Start();
}

base::Status MachineImpl::Pause() {
  RETURN_IF_ERROR(CheckBuilt("pause"));
  bool was_running = vcpu_set_->state() == RunState::kRunning;
  RETURN_IF_ERROR(vcpu_set_->Pause());
  if (!was_running) return base::Ok();
  // Read as soon as every vCPU has stopped (before draining the disks), so a
  // save taken later records the moment of the pause. Not before: the TSC
  // read must not be older than the guest's last rdtsc, or a restored
  // guest's time would step backwards. Whatever passes between the stop and
  // this read becomes guest time, so keep it short.
  if (!clocks_pending_) {
    paused_tsc_.clear();
    for (auto& v : vcpus_) {
      ASSIGN_OR_RETURN(uint64_t tsc, ReadTsc(v));
      paused_tsc_.push_back(tsc);
    }
    ASSIGN_OR_RETURN(kvm_clock_data clock, vm_->GetClock());
    paused_clock_ns_ = clock.clock;
  }
  for (size_t i = 0; i < disks_.size(); ++i) {
    if (auto st = disks_[i]->Drain(); !st)
      return st.error().Wrap("drain disk " + std::to_string(i));
  }
  return base::Ok();
}

base::Status MachineImpl::Resume() {
  RETURN_IF_ERROR(CheckBuilt("resume"));
  if (vcpu_set_->state() != RunState::kPaused)
    return vcpu_set_->Resume();  // its error names the state
  RETURN_IF_ERROR(RestoreClocks());
  return vcpu_set_->Resume();
}

base::Result<MachineSnapshot> MachineImpl::CaptureSnapshot() {
  MachineSnapshot s;
  s.definition_text = config::FormatVmDefinition(options_.definition);
  s.memory_bytes = memory_->size();
  s.tsc_khz = tsc_khz_;
  bool never_ran = paused_tsc_.empty();  // paused straight from kCreated
  for (size_t i = 0; i < vcpus_.size(); ++i) {
    ASSIGN_OR_RETURN(VcpuState v, CaptureVcpuState(vcpus_[i], layout_));
    if (!never_ran) v.tsc = paused_tsc_[i];
    s.vcpus.push_back(std::move(v));
  }
  if (never_ran) {
    ASSIGN_OR_RETURN(kvm_clock_data clock, vm_->GetClock());
    s.kvm_clock_ns = clock.clock;
  } else {
    s.kvm_clock_ns = paused_clock_ns_;
  }
  s.serial = serial_->SaveState();
  for (auto& d : disks_) s.devices.push_back(d->SaveState());
  return s;
}

base::Status MachineImpl::SaveState(const std::string& path) {
  RETURN_IF_ERROR(CheckBuilt("save state"));
  RunState st = vcpu_set_->state();
  if (st != RunState::kPaused)
    return base::Error(base::Code::kFailedPrecondition,
                       "save state: machine is " + std::string(ToString(st)) + ", not paused");
  auto s = CaptureSnapshot();
  if (!s) return s.error().Wrap("save state");
  if (auto r = WriteStateFile(path, *s, *memory_); !r) return r.error().Wrap("save state");
  return base::Ok();
}

base::Result<std::string> MachineImpl::SaveDeviceState() {
  RETURN_IF_ERROR(CheckBuilt("save device state"));
  RunState st = vcpu_set_->state();
  if (st != RunState::kPaused)
    return base::Error(
        base::Code::kFailedPrecondition,
        "save device state: machine is " + std::string(ToString(st)) + ", not paused");
  auto s = CaptureSnapshot();
  if (!s) return s.error().Wrap("save device state");
  auto blob = EncodeDeviceState(*s);
  if (!blob) return blob.error().Wrap("save device state");
  return std::move(*blob);
}

base::Status MachineImpl::FinishIncoming(std::string_view device_state) {
  const config::VmDefinition& def = options_.definition;
  const std::string what = "finish incoming vm " + def.name;
  if (!incoming_)
    return base::Error(base::Code::kFailedPrecondition,
                       what + ": machine is " + std::string(ToString(state())) + ", not incoming");
  // The blob is verified completely before anything is built.
  auto s = DecodeDeviceState(device_state);
  if (!s) return s.error().Wrap(what);
  if (auto st = CheckSnapshotShape(def, *s, "the device-state blob"); !st)
    return st.error().Wrap(what);
  base::Status st = Build();
  if (st) st = ApplySnapshot(*s);
  if (!st) {
    Unbuild();  // stays kIncoming; guest RAM is untouched
    return st.error().Wrap(what);
  }
  incoming_ = false;
  return base::Ok();
}

base::Status MachineImpl::TransformDisk(size_t index, const DiskTransform& fn) {
  RETURN_IF_ERROR(CheckBuilt("transform disk"));
  if (index >= disks_.size())
    return base::Error(base::Code::kOutOfRange, "transform disk " + std::to_string(index) +
                                                    ": the vm has " +
                                                    std::to_string(disks_.size()) + " disks");
  if (auto st = disks_[index]->TransformDisk(fn); !st)
    return st.error().Wrap("disk " + std::to_string(index));
  return base::Ok();
}

void MachineImpl::Shutdown() {
  if (incoming_) {
    incoming_ = false;
    shut_down_ = true;
    return;
  }
  throttle_.reset();
  if (vcpu_set_) vcpu_set_->Stop();
  for (size_t i = 0; i < disks_.size(); ++i) {
    if (auto st = disks_[i]->Drain(); !st)
      base::LogWarning("shutdown: drain disk " + std::to_string(i) + ": " + st.error().ToString());
  }
}

MachineStats MachineImpl::stats() const {
  MachineStats s;
  s.memory_bytes = memory_ ? memory_->size() : 0;
  for (const auto& d : disks_) {
    VirtioBlkCounters c = d->counters();
    s.disk_reads += c.reads;
    s.disk_writes += c.writes;
    s.disk_flushes += c.flushes;
    DiskStats ds;
    ds.reads = c.reads;
    ds.writes = c.writes;
    ds.flushes = c.flushes;
    ds.read_errors = c.read_errors;
    ds.write_errors = c.write_errors;
    ds.flush_errors = c.flush_errors;
    ds.first_error = std::move(c.first_error);
    ds.first_error_unix_ms = c.first_error_unix_ms;
    s.disks.push_back(std::move(ds));
  }
  s.exits = vcpu_set_ ? vcpu_set_->exits() : 0;
  s.unknown_accesses = bus_ ? bus_->unknown_accesses() : 0;
  s.guest_tsc_continuous = tsc_continuous_;
  s.guest_clock = guest_clock_;
  s.restore_tsc_jump_ticks = restore_tsc_jump_;
  return s;
}

}  // namespace

std::string_view ToString(RunState s) {
  switch (s) {
    case RunState::kCreated: return "created";
    case RunState::kRunning: return "running";
    case RunState::kPaused: return "paused";
    case RunState::kPoweredOff: return "powered-off";
    case RunState::kFailed: return "failed";
    case RunState::kIncoming: return "incoming";
  }
  return "unknown";
}

std::string_view ToString(GuestClockSync s) {
  switch (s) {
    case GuestClockSync::kNotRestored: return "not-restored";
    case GuestClockSync::kTscWrite: return "tsc-write";
    case GuestClockSync::kTscOffset: return "tsc-offset";
  }
  return "unknown";
}

base::Result<std::unique_ptr<Machine>> Machine::Create(const MachineOptions& options) {
  const config::VmDefinition& def = options.definition;
  RETURN_IF_ERROR(CheckShape(def));
  ASSIGN_OR_RETURN(KvmSystem kvm, KvmSystem::Open(options.kvm_device));
  ASSIGN_OR_RETURN(std::unique_ptr<GuestMemory> memory, GuestMemory::Create(def.memory_bytes));
  auto m = std::make_unique<MachineImpl>(options, std::move(kvm), std::move(memory));
  if (auto st = m->Build(); !st) return st.error().Wrap("create vm " + def.name);
  if (auto st = m->BootFresh(); !st) return st.error().Wrap("create vm " + def.name);
  return std::unique_ptr<Machine>(std::move(m));
}

base::Result<std::unique_ptr<Machine>> Machine::CreateIncoming(const MachineOptions& options) {
  const config::VmDefinition& def = options.definition;
  // KVM is opened now so a destination without it fails before any memory
  // is sent; the VM itself is created by FinishIncoming.
  RETURN_IF_ERROR(CheckShape(def));
  auto kvm = KvmSystem::Open(options.kvm_device);
  if (!kvm) return kvm.error().Wrap("create incoming vm " + def.name);
  auto memory = GuestMemory::Create(def.memory_bytes);
  if (!memory) return memory.error().Wrap("create incoming vm " + def.name);
  auto m = std::make_unique<MachineImpl>(options, std::move(*kvm), std::move(*memory));
  m->MarkIncoming();
  return std::unique_ptr<Machine>(std::move(m));
}

base::Result<std::vector<Machine::MemoryRange>> MachineImpl::PopulatedMemory() const {
  std::vector<MemoryRange> ranges;
  const off_t size = static_cast<off_t>(memory_->size());
  off_t pos = 0;
  while (pos < size) {
    const off_t data = ::lseek(memory_->memfd(), pos, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // nothing written after pos
      return base::ErrnoError("lseek(SEEK_DATA) on guest memory");
    }
    const off_t hole = ::lseek(memory_->memfd(), data, SEEK_HOLE);
    if (hole < 0) return base::ErrnoError("lseek(SEEK_HOLE) on guest memory");
    const uint64_t first = static_cast<uint64_t>(data) & ~uint64_t{4095};
    const uint64_t end = (static_cast<uint64_t>(std::min(hole, size)) + 4095) & ~uint64_t{4095};
    ranges.push_back({first, end - first});
    pos = static_cast<off_t>(end);
  }
  return ranges;
}

base::Result<std::unique_ptr<Machine>> Machine::Restore(const MachineOptions& options,
                                                        const std::string& state_path) {
  const config::VmDefinition& def = options.definition;
  RETURN_IF_ERROR(CheckShape(def));
  // Everything in the file is verified before any KVM object exists.
  ASSIGN_OR_RETURN(LoadedState loaded, ReadStateFile(state_path));
  const MachineSnapshot& s = loaded.snapshot;
  if (auto st = CheckSnapshotShape(def, s, state_path); !st)
    return st.error().Wrap("restore vm " + def.name);
  ASSIGN_OR_RETURN(KvmSystem kvm, KvmSystem::Open(options.kvm_device));
  auto m = std::make_unique<MachineImpl>(options, std::move(kvm), std::move(loaded.memory));
  if (auto st = m->Build(); !st) return st.error().Wrap("restore vm " + def.name);
  if (auto st = m->ApplySnapshot(s); !st)
    return st.error().Wrap("restore vm " + def.name + " from " + state_path);
  return std::unique_ptr<Machine>(std::move(m));
}

}  // namespace vm
