// ReadHostCpu: KVM_GET_SUPPORTED_CPUID on our own /dev/kvm fd (vm/ keeps its
// Kvm wrapper private, and the appliance needs only these few bits).
#include "daemon/host_cpu.h"

#include <fcntl.h>
#include <linux/stddef.h>
#include <sys/ioctl.h>

// Debian 12's uapi headers declare kvm_cpuid2's flexible array through
// __DECLARE_FLEX_ARRAY, which in C++ adds a byte and changes the ioctl number
// (KVM_GET_SUPPORTED_CPUID then fails with EINVAL). Same fix as vm/src/kvm_uapi.h.
#undef __DECLARE_FLEX_ARRAY
#define __DECLARE_FLEX_ARRAY(TYPE, NAME) TYPE NAME[0]
#include <linux/kvm.h>

static_assert(sizeof(kvm_cpuid2) == 8, "kvm_cpuid2 layout differs from the kernel's");

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>

#include "base/fd.h"

namespace appliance {
namespace {

// One CPUID register's feature bits, named as Linux's /proc/cpuinfo names
// them. Bits that describe the OS rather than the CPU (osxsave, ospke) are
// left out: they would differ between identical hosts.
struct FeatureBit {
  int bit;
  const char* name;
};

constexpr FeatureBit kLeaf1Edx[] = {
    {0, "fpu"},      {1, "vme"},  {2, "de"},    {3, "pse"},  {4, "tsc"},    {5, "msr"},
    {6, "pae"},      {7, "mce"},  {8, "cx8"},   {9, "apic"}, {11, "sep"},   {12, "mtrr"},
    {13, "pge"},     {14, "mca"}, {15, "cmov"}, {16, "pat"}, {17, "pse36"}, {18, "pn"},
    {19, "clflush"}, {21, "dts"}, {22, "acpi"}, {23, "mmx"}, {24, "fxsr"},  {25, "sse"},
    {26, "sse2"},    {27, "ss"},  {28, "ht"},   {29, "tm"},  {31, "pbe"},
};
constexpr FeatureBit kLeaf1Ecx[] = {
    {0, "pni"},     {1, "pclmulqdq"},   {2, "dtes64"},  {3, "monitor"},
    {4, "ds_cpl"},  {5, "vmx"},         {6, "smx"},     {7, "est"},
    {8, "tm2"},     {9, "ssse3"},       {10, "cid"},    {11, "sdbg"},
    {12, "fma"},    {13, "cx16"},       {14, "xtpr"},   {15, "pdcm"},
    {17, "pcid"},   {18, "dca"},        {19, "sse4_1"}, {20, "sse4_2"},
    {21, "x2apic"}, {22, "movbe"},      {23, "popcnt"}, {24, "tsc_deadline_timer"},
    {25, "aes"},    {26, "xsave"},      {28, "avx"},    {29, "f16c"},
    {30, "rdrand"}, {31, "hypervisor"},
};
constexpr FeatureBit kLeaf7Ebx[] = {
    {0, "fsgsbase"},    {1, "tsc_adjust"}, {2, "sgx"},       {3, "bmi1"},      {4, "hle"},
    {5, "avx2"},        {7, "smep"},       {8, "bmi2"},      {9, "erms"},      {10, "invpcid"},
    {11, "rtm"},        {12, "cqm"},       {14, "mpx"},      {15, "rdt_a"},    {16, "avx512f"},
    {17, "avx512dq"},   {18, "rdseed"},    {19, "adx"},      {20, "smap"},     {21, "avx512ifma"},
    {23, "clflushopt"}, {24, "clwb"},      {25, "intel_pt"}, {26, "avx512pf"}, {27, "avx512er"},
    {28, "avx512cd"},   {29, "sha_ni"},    {30, "avx512bw"}, {31, "avx512vl"},
};
constexpr FeatureBit kLeaf7Ecx[] = {
    {1, "avx512vbmi"},     {2, "umip"},      {5, "waitpkg"},           {6, "avx512_vbmi2"},
    {8, "gfni"},           {9, "vaes"},      {10, "vpclmulqdq"},       {11, "avx512_vnni"},
    {12, "avx512_bitalg"}, {13, "tme"},      {14, "avx512_vpopcntdq"}, {16, "la57"},
    {22, "rdpid"},         {25, "cldemote"}, {27, "movdiri"},          {28, "movdir64b"},
    {30, "sgx_lc"},
};
constexpr FeatureBit kLeaf7Edx[] = {
    {2, "avx512_4vnniw"},       {3, "avx512_4fmaps"},      {4, "fsrm"},
    {8, "avx512_vp2intersect"}, {10, "md_clear"},          {14, "serialize"},
    {16, "tsxldtrk"},           {18, "pconfig"},           {20, "ibt"},
    {22, "amx_bf16"},           {23, "avx512_fp16"},       {24, "amx_tile"},
    {25, "amx_int8"},           {26, "spec_ctrl"},         {27, "intel_stibp"},
    {28, "flush_l1d"},          {29, "arch_capabilities"}, {31, "ssbd"},
};

template <size_t N>
void AddBits(uint32_t reg, const FeatureBit (&table)[N], std::vector<std::string>& out) {
  for (const FeatureBit& f : table) {
    if (reg & (1u << f.bit)) out.emplace_back(f.name);
  }
}

// KVM's supported CPUID table; grows the buffer while KVM says E2BIG.
base::Result<std::vector<kvm_cpuid_entry2>> SupportedCpuid(int kvm_fd) {
  for (uint32_t n = 128; n <= 4096; n *= 2) {
    const size_t bytes = sizeof(kvm_cpuid2) + n * sizeof(kvm_cpuid_entry2);
    std::unique_ptr<uint8_t[]> buf(new uint8_t[bytes]());
    auto* cpuid = reinterpret_cast<kvm_cpuid2*>(buf.get());
    cpuid->nent = n;
    if (::ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) == 0)
      return std::vector<kvm_cpuid_entry2>(cpuid->entries, cpuid->entries + cpuid->nent);
    if (errno != E2BIG) return base::ErrnoError("KVM_GET_SUPPORTED_CPUID");
  }
  return base::Error(base::Code::kInternal, "KVM_GET_SUPPORTED_CPUID: more than 4096 entries");
}

const kvm_cpuid_entry2* FindLeaf(const std::vector<kvm_cpuid_entry2>& entries, uint32_t function,
                                 uint32_t index) {
  for (const auto& e : entries) {
    if (e.function != function) continue;
    const bool indexed = (e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) != 0;
    if (!indexed || e.index == index) return &e;
  }
  return nullptr;
}

}  // namespace

base::Result<HostCpu> ReadHostCpu(const std::string& kvm_device) {
  auto kvm = base::Fd::Open(kvm_device, O_RDWR | O_CLOEXEC);
  if (!kvm)
    return base::Error(base::Code::kUnavailable,
                       "cannot read the CPU KVM offers: " + kvm.error().message());
  ASSIGN_OR_RETURN(std::vector<kvm_cpuid_entry2> entries, SupportedCpuid(kvm->get()));
  HostCpu cpu;
  if (const auto* leaf0 = FindLeaf(entries, 0, 0)) {
    char vendor[13] = {};
    std::memcpy(vendor + 0, &leaf0->ebx, 4);
    std::memcpy(vendor + 4, &leaf0->edx, 4);
    std::memcpy(vendor + 8, &leaf0->ecx, 4);
    cpu.vendor = vendor;
  }
  if (const auto* leaf1 = FindLeaf(entries, 1, 0)) {
    AddBits(leaf1->edx, kLeaf1Edx, cpu.features);
    AddBits(leaf1->ecx, kLeaf1Ecx, cpu.features);
  }
  if (const auto* leaf7 = FindLeaf(entries, 7, 0)) {
    AddBits(leaf7->ebx, kLeaf7Ebx, cpu.features);
    AddBits(leaf7->ecx, kLeaf7Ecx, cpu.features);
    AddBits(leaf7->edx, kLeaf7Edx, cpu.features);
  }
  std::sort(cpu.features.begin(), cpu.features.end());
  return cpu;
}

std::vector<std::string> MissingCpuFeatures(const HostCpu& host,
                                            std::span<const std::string> wanted) {
  std::vector<std::string> missing;
  for (const std::string& f : wanted) {
    if (std::find(host.features.begin(), host.features.end(), f) == host.features.end())
      missing.push_back(f);
  }
  return missing;
}

}  // namespace appliance
