// The complete architectural state of one vCPU as KVM exposes it, how to read
// it from and write it to a vCPU, and its explicit little-endian encoding for
// the state file (vm/STATE_FORMAT.md, "vCPU section").
#pragma once

#include "kvm_uapi.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "kvm.h"

namespace vm {

inline constexpr uint32_t kMsrIa32Tsc = 0x10;

// What a vCPU's state consists of on this host, probed once per VM.
struct VcpuStateLayout {
  uint32_t xsave_bytes = 4096;  // KVM_CAP_XSAVE2 size, else sizeof(kvm_xsave)
  bool use_xsave2 = false;
  // MSRs from KVM_GET_MSR_INDEX_LIST that this vCPU can read and write, without
  // IA32_TSC: the TSC is saved separately and written deliberately (see
  // VcpuState::tsc).
  std::vector<uint32_t> msrs;
};

struct VcpuState {
  kvm_regs regs{};
  kvm_sregs2 sregs{};
  kvm_fpu fpu{};
  std::vector<uint8_t> xsave;  // the raw XSAVE area (hardware-defined layout)
  kvm_xcrs xcrs{};
  std::vector<std::pair<uint32_t, uint64_t>> msrs;
  kvm_vcpu_events events{};
  kvm_mp_state mp_state{};
  kvm_debugregs debugregs{};
  // IA32_TSC when the VM was paused. Not part of Apply(): KVM treats TSC
  // writes within a second of each other as "keep in sync" and would ignore a
  // second one, so the Machine writes it exactly once, right before the vCPUs
  // run again.
  uint64_t tsc = 0;
};

// Probes which MSRs read and accept their own value back (KVM_GET_MSRS and
// KVM_SET_MSRS stop at the first one that fails, so each is tried alone) on
// a vCPU that has not run yet, and the XSAVE size.
base::Result<VcpuStateLayout> ProbeVcpuStateLayout(const KvmSystem& kvm, const KvmVm& vm,
                                                   const KvmVcpu& vcpu);

base::Result<VcpuState> CaptureVcpuState(const KvmVcpu& vcpu, const VcpuStateLayout& layout);
// Writes everything except the TSC. Errors name the part that KVM refused.
base::Status ApplyVcpuState(const KvmVcpu& vcpu, const VcpuState& state,
                            const VcpuStateLayout& layout);

base::Result<uint64_t> ReadTsc(const KvmVcpu& vcpu);
base::Status WriteTsc(const KvmVcpu& vcpu, uint64_t tsc);
// Sets MSRs in one KVM_SET_MSRS; an error names the first MSR KVM refused.
base::Status SetMsrs(const KvmVcpu& vcpu, const std::vector<std::pair<uint32_t, uint64_t>>& msrs);

std::string EncodeVcpuState(const VcpuState& state);
// Rejects anything malformed with kDataLoss; never reads out of bounds.
base::Result<VcpuState> DecodeVcpuState(std::string_view blob);

bool operator==(const VcpuState& a, const VcpuState& b);

}  // namespace vm
