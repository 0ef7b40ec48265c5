// The machine a guest program finds at power-on (vm/guest_abi.h): identity
// page tables, a GDT with ring-3 segments and a TSS, the parameter page, the
// program image, and each vCPU's 64-bit CPL3 register state. Only a fresh
// Machine uses this; a restored one gets all of it from the state file.
#pragma once

#include "kvm_uapi.h"

#include <cstdint>
#include <string>

#include "base/result.h"
#include "guest_memory.h"
#include "vm/guest_abi.h"

namespace vm {

// GDT selectors (RPL 3 for the ring-3 segments).
inline constexpr uint16_t kCode64Selector = 0x08 | 3;
inline constexpr uint16_t kData64Selector = 0x10 | 3;
inline constexpr uint16_t kTssSelector = 0x18;
inline constexpr uint64_t kTssGpa = FERRY_TSS_GPA;
// Ports [0, kIoBitmapPorts) are granted through the TSS I/O bitmap. See
// guest_abi.h for why the bitmap is needed although rflags asks for IOPL 3.
inline constexpr uint32_t kIoBitmapPorts = FERRY_IO_PORTS_GRANTED;

struct BootParams {
  uint64_t memory_bytes = 0;
  uint64_t tsc_khz = 0;
  uint32_t vcpu_count = 0;
  uint32_t disk_count = 0;
  std::string cmdline;
};

// GDT, TSS with its I/O bitmap, and page tables mapping 0..4 GiB.
base::Status WriteBootTables(GuestMemory& memory);
// Copies the flat binary at path to FERRY_PROGRAM_GPA; returns the first free
// 2 MiB-aligned address after it. Errors name the path.
base::Result<uint64_t> LoadProgram(GuestMemory& memory, const std::string& path);
// struct ferry_guest_params at FERRY_PARAMS_GPA, field by field; tsc_offset 0.
base::Status WriteParams(GuestMemory& memory, const BootParams& params, uint64_t program_end);
// The paravirtual clock offset (ferry_guest_params::tsc_offset). Read from
// and written to guest RAM; the write goes through GuestMemory, so the page
// is recorded as dirty and a running move sends it again. Call only while
// every vCPU is paused (guest_abi.h explains why the guest retries a read
// that straddles a change).
base::Result<int64_t> ReadTscOffset(GuestMemory& memory);
base::Status WriteTscOffset(GuestMemory& memory, int64_t offset);

// Long mode, CPL3, paging on with the tables above. Starts from the vCPU's
// current sregs so fields this code does not set keep KVM's reset values.
void SetInitialSregs(kvm_sregs2& sregs);
kvm_regs InitialRegs(uint32_t vcpu_index);

}  // namespace vm
