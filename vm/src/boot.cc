#include "boot.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cstddef>
#include <cstring>
#include <vector>

#include "base/fd.h"
#include "base/le.h"

namespace vm {
namespace {

constexpr uint64_t k2MiB = 2ull << 20;

// Page-table entry bits. Accessed and Dirty are preset so the CPU (or KVM's
// shadow MMU) never writes the tables back: such writes would show up in the
// dirty log as pages the guest program never touched.
constexpr uint64_t kPresent = 1ull << 0;
constexpr uint64_t kWritable = 1ull << 1;
constexpr uint64_t kUser = 1ull << 2;
constexpr uint64_t kAccessed = 1ull << 5;
constexpr uint64_t kDirty = 1ull << 6;
constexpr uint64_t kLargePage = 1ull << 7;
constexpr uint64_t kTableFlags = kPresent | kWritable | kUser | kAccessed;

constexpr uint64_t kPdptGpa = FERRY_PML4_GPA + 0x1000;
constexpr uint64_t kPdGpa = FERRY_PML4_GPA + 0x2000;  // four page directories

// x86 segment descriptor (8 bytes) for a flat segment: base 0, limit 4 GiB.
// access = P|DPL|S|type; flags = G|D/B|L. The Accessed type bit is preset for
// the same reason as in the page tables.
uint64_t FlatDescriptor(uint8_t access, uint8_t flags) {
  return 0xffffull | (uint64_t{access} << 40) | (uint64_t{0xf} << 48) | (uint64_t{flags} << 52);
}

// The parameter page's byte layout is part of the ABI: a saved VM carries it
// in its RAM, so moving a field would break restoring older state files.
static_assert(offsetof(ferry_guest_params, tsc_khz) == 16);
static_assert(offsetof(ferry_guest_params, program_end) == 32);
static_assert(offsetof(ferry_guest_params, cmdline) == 40);
static_assert(offsetof(ferry_guest_params, tsc_offset) == 40 + FERRY_CMDLINE_MAX);
static_assert(sizeof(ferry_guest_params) <= 4096, "the parameters are one page");
constexpr uint64_t kTscOffsetGpa = FERRY_PARAMS_GPA + offsetof(ferry_guest_params, tsc_offset);

constexpr uint32_t kTssBaseSize = 104;                             // 64-bit TSS without I/O bitmap
constexpr uint32_t kTssLimit = kTssBaseSize + kIoBitmapPorts / 8;  // + the 0xff end byte

kvm_segment FlatSegment(uint16_t selector, uint8_t type, bool code) {
  kvm_segment s{};
  s.base = 0;
  s.limit = 0xffffffff;
  s.selector = selector;
  s.type = type;
  s.present = 1;
  s.dpl = 3;
  s.s = 1;
  s.l = code ? 1 : 0;   // 64-bit code segment
  s.db = code ? 0 : 1;  // L and D must not both be set
  s.g = 1;
  return s;
}

}  // namespace

base::Status WriteBootTables(GuestMemory& memory) {
  // GDT: null, 64-bit code DPL3, data DPL3, 16-byte TSS descriptor.
  uint8_t gdt[5 * 8] = {};
  base::PutLe64(gdt + 8, FlatDescriptor(0xfb, 0xa));   // P, DPL3, S, code exec/read accessed; G|L
  base::PutLe64(gdt + 16, FlatDescriptor(0xf3, 0xc));  // P, DPL3, S, data read/write accessed; G|D
  uint64_t tss_low = (kTssLimit & 0xffff) | ((kTssGpa & 0xffffff) << 16) |
                     (uint64_t{0x8b} << 40) |  // P, DPL0, type 0xb: busy 64-bit TSS
                     (((kTssGpa >> 24) & 0xff) << 56);
  base::PutLe64(gdt + 24, tss_low);
  base::PutLe64(gdt + 32, kTssGpa >> 32);
  RETURN_IF_ERROR(memory.Write(FERRY_GDT_GPA, gdt, sizeof gdt));

  // TSS with an all-zero I/O permission bitmap (ports [0, kIoBitmapPorts)
  // allowed; guest_abi.h). rflags asks for IOPL 3, which is enough on VMX/SVM;
  // a PVM host (PLATFORM.md) silently clears IOPL for ring-3 guest code, and
  // then the CPU consults this bitmap. Measured here: without it the first
  // OUT raises #GP.
  std::vector<uint8_t> tss(kTssLimit + 1, 0);
  base::PutLe16(tss.data() + 102, kTssBaseSize);  // I/O map base
  tss[kTssLimit] = 0xff;                          // required terminator byte
  RETURN_IF_ERROR(memory.Write(kTssGpa, tss.data(), tss.size()));

  // Page tables: PML4[0] -> PDPT; PDPT[0..3] -> four PDs of 2 MiB pages.
  uint8_t entry[8];
  base::PutLe64(entry, kPdptGpa | kTableFlags);
  RETURN_IF_ERROR(memory.Write(FERRY_PML4_GPA, entry, 8));
  for (uint64_t i = 0; i < 4; ++i) {
    base::PutLe64(entry, (kPdGpa + i * 0x1000) | kTableFlags);
    RETURN_IF_ERROR(memory.Write(kPdptGpa + i * 8, entry, 8));
    uint8_t pd[4096];
    for (uint64_t j = 0; j < 512; ++j)
      base::PutLe64(pd + j * 8, ((i * 512 + j) * k2MiB) | kTableFlags | kDirty | kLargePage);
    RETURN_IF_ERROR(memory.Write(kPdGpa + i * 0x1000, pd, sizeof pd));
  }
  return base::Ok();
}

base::Result<uint64_t> LoadProgram(GuestMemory& memory, const std::string& path) {
  ASSIGN_OR_RETURN(base::Fd fd, base::Fd::Open(path, O_RDONLY));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return base::ErrnoError("stat guest program " + path);
  if (!S_ISREG(st.st_mode))
    return base::Error(base::Code::kInvalidArgument,
                       "guest program " + path + " is not a regular file");
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size == 0)
    return base::Error(base::Code::kInvalidArgument, "guest program " + path + " is empty");
  if (size > FERRY_MAX_PROGRAM_BYTES || FERRY_PROGRAM_GPA + size > memory.size())
    return base::Error(base::Code::kInvalidArgument,
                       "guest program " + path + " is " + std::to_string(size) +
                           " bytes; at most " + std::to_string(FERRY_MAX_PROGRAM_BYTES) +
                           " bytes that fit in guest memory above 1 MiB are allowed");
  ASSIGN_OR_RETURN(uint8_t * dst, memory.At(FERRY_PROGRAM_GPA, size));
  ASSIGN_OR_RETURN(size_t got, base::ReadFull(fd.get(), dst, size));
  if (got != size)
    return base::Error(base::Code::kUnavailable, "guest program " + path + " shrank while loading");
  memory.MarkDirty(FERRY_PROGRAM_GPA, size);
  return (FERRY_PROGRAM_GPA + size + k2MiB - 1) / k2MiB * k2MiB;
}

base::Status WriteParams(GuestMemory& memory, const BootParams& params, uint64_t program_end) {
  if (params.cmdline.size() >= FERRY_CMDLINE_MAX)
    return base::Error(base::Code::kInvalidArgument,
                       "cmdline is " + std::to_string(params.cmdline.size()) +
                           " bytes; the guest parameter page holds at most " +
                           std::to_string(FERRY_CMDLINE_MAX - 1));
  std::vector<uint8_t> page(sizeof(ferry_guest_params), 0);
  uint8_t* p = page.data();
  base::PutLe64(p + offsetof(ferry_guest_params, magic), FERRY_PARAMS_MAGIC);
  base::PutLe64(p + offsetof(ferry_guest_params, memory_bytes), params.memory_bytes);
  base::PutLe64(p + offsetof(ferry_guest_params, tsc_khz), params.tsc_khz);
  base::PutLe32(p + offsetof(ferry_guest_params, vcpu_count), params.vcpu_count);
  base::PutLe32(p + offsetof(ferry_guest_params, disk_count), params.disk_count);
  base::PutLe64(p + offsetof(ferry_guest_params, program_end), program_end);
  std::memcpy(p + offsetof(ferry_guest_params, cmdline), params.cmdline.data(),
              params.cmdline.size());
  base::PutLe64(p + offsetof(ferry_guest_params, tsc_offset), 0);  // fresh boot: guest time = TSC
  return memory.Write(FERRY_PARAMS_GPA, page.data(), page.size());
}

base::Result<int64_t> ReadTscOffset(GuestMemory& memory) {
  uint8_t bytes[8];
  RETURN_IF_ERROR(memory.Read(kTscOffsetGpa, bytes, sizeof bytes));
  return static_cast<int64_t>(base::GetLe64(bytes));
}

base::Status WriteTscOffset(GuestMemory& memory, int64_t offset) {
  uint8_t bytes[8];
  base::PutLe64(bytes, static_cast<uint64_t>(offset));
  return memory.Write(kTscOffsetGpa, bytes, sizeof bytes);
}

void SetInitialSregs(kvm_sregs2& s) {
  s.cs = FlatSegment(kCode64Selector, 0xb, /*code=*/true);
  s.ss = FlatSegment(kData64Selector, 0x3, /*code=*/false);
  s.ds = s.es = s.fs = s.gs = s.ss;
  s.tr = kvm_segment{};
  s.tr.base = kTssGpa;
  s.tr.limit = kTssLimit;
  s.tr.selector = kTssSelector;
  s.tr.type = 0xb;  // busy 64-bit TSS: VM entry requires a valid TR
  s.tr.present = 1;
  s.ldt = kvm_segment{};
  s.ldt.type = 0x2;
  s.ldt.unusable = 1;
  s.gdt.base = FERRY_GDT_GPA;
  s.gdt.limit = 5 * 8 - 1;
  // No IDT: any exception escalates to a triple fault, which KVM reports as
  // KVM_EXIT_SHUTDOWN and the Machine turns into kFailed.
  s.idt.base = 0;
  s.idt.limit = 0;
  s.cr0 =
      (1u << 0) | (1u << 1) | (1u << 4) | (1u << 5) | (1u << 16) | (1u << 31);  // PE MP ET NE WP PG
  s.cr3 = FERRY_PML4_GPA;
  s.cr4 = (1u << 5) | (1u << 9) | (1u << 10);  // PAE, OSFXSR, OSXMMEXCPT (SSE in ring 3)
  s.efer = (1u << 8) | (1u << 10);             // LME, LMA
  s.flags = 0;
}

kvm_regs InitialRegs(uint32_t vcpu_index) {
  kvm_regs r{};
  r.rip = FERRY_PROGRAM_GPA;
  r.rsp = FERRY_STACK_TOP(vcpu_index);
  r.rdi = FERRY_PARAMS_GPA;
  r.rsi = vcpu_index;
  r.rflags = 0x3002;  // IOPL 3, reserved bit 1, interrupts off
  return r;
}

}  // namespace vm
