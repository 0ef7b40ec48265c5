#include "kvm.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace vm {
namespace {

struct RequiredCap {
  unsigned cap;
  const char* name;
};

// What the VMM cannot work without. Optional ones (KVM_CAP_XSAVE2,
// KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, KVM_CAP_SET_TSS_ADDR) are queried where
// they are used.
constexpr RequiredCap kRequiredCaps[] = {
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
    {KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE"},
    {KVM_CAP_XSAVE, "KVM_CAP_XSAVE"},
    {KVM_CAP_XCRS, "KVM_CAP_XCRS"},
    {KVM_CAP_VCPU_EVENTS, "KVM_CAP_VCPU_EVENTS"},
    {KVM_CAP_DEBUGREGS, "KVM_CAP_DEBUGREGS"},
    {KVM_CAP_ADJUST_CLOCK, "KVM_CAP_ADJUST_CLOCK"},
    {KVM_CAP_GET_TSC_KHZ, "KVM_CAP_GET_TSC_KHZ"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
    {KVM_CAP_SREGS2, "KVM_CAP_SREGS2"},
};

base::Code OpenErrorCode(int e) {
  switch (e) {
    case ENOENT:
    case ENODEV:
    case ENXIO: return base::Code::kNotFound;
    case EACCES:
    case EPERM: return base::Code::kPermissionDenied;
    default: return base::Code::kFailedPrecondition;
  }
}

}  // namespace

base::Result<KvmSystem> KvmSystem::Open(const std::string& device) {
  int raw = ::open(device.c_str(), O_RDWR | O_CLOEXEC);
  if (raw < 0) {
    int e = errno;
    return base::Error(
        OpenErrorCode(e),
        "cannot open " + device + ": " + std::strerror(e) + "; is KVM available on this host?", e);
  }
  base::Fd fd(raw);
  int version = ::ioctl(fd.get(), KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION)
    return base::Error(base::Code::kFailedPrecondition,
                       device + " is not a usable KVM device: KVM_GET_API_VERSION returned " +
                           std::to_string(version) +
                           (version < 0 ? std::string(" (") + std::strerror(errno) + ")" : "") +
                           ", expected " + std::to_string(KVM_API_VERSION));
  for (const auto& c : kRequiredCaps) {
    if (::ioctl(fd.get(), KVM_CHECK_EXTENSION, c.cap) <= 0)
      return base::Error(base::Code::kFailedPrecondition,
                         "KVM on " + device + " lacks " + c.name + ", which ferry requires");
  }
  int mmap_size = ::ioctl(fd.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
  if (mmap_size < static_cast<int>(sizeof(kvm_run)))
    return base::ErrnoError("KVM_GET_VCPU_MMAP_SIZE on " + device);
  return KvmSystem(std::move(fd), device, mmap_size);
}

int KvmSystem::CheckExtension(unsigned cap) const {
  int r = ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap);
  return r < 0 ? 0 : r;
}

base::Result<KvmVm> KvmSystem::CreateVm() const {
  int raw;
  do {
    raw = ::ioctl(fd_.get(), KVM_CREATE_VM, 0);
  } while (raw < 0 && errno == EINTR);
  if (raw < 0) return base::ErrnoError("KVM_CREATE_VM on " + device_);
  return KvmVm(base::Fd(raw));
}

base::Result<std::vector<kvm_cpuid_entry2>> KvmSystem::SupportedCpuid() const {
  // The kernel reports E2BIG until the buffer is large enough.
  for (uint32_t n = 64; n <= 4096; n *= 2) {
    size_t bytes = sizeof(kvm_cpuid2) + n * sizeof(kvm_cpuid_entry2);
    auto buf = std::make_unique<uint64_t[]>(bytes / sizeof(uint64_t) + 1);
    auto* cpuid = reinterpret_cast<kvm_cpuid2*>(buf.get());
    cpuid->nent = n;
    if (::ioctl(fd_.get(), KVM_GET_SUPPORTED_CPUID, cpuid) == 0)
      return std::vector<kvm_cpuid_entry2>(cpuid->entries, cpuid->entries + cpuid->nent);
    if (errno != E2BIG) return base::ErrnoError("KVM_GET_SUPPORTED_CPUID");
  }
  return base::Error(base::Code::kInternal, "KVM_GET_SUPPORTED_CPUID: more than 4096 entries");
}

base::Result<std::vector<uint32_t>> KvmSystem::MsrIndexList() const {
  kvm_msr_list probe{};
  probe.nmsrs = 0;
  // The first call fails with E2BIG and reports the count.
  if (::ioctl(fd_.get(), KVM_GET_MSR_INDEX_LIST, &probe) != 0 && errno != E2BIG)
    return base::ErrnoError("KVM_GET_MSR_INDEX_LIST");
  uint32_t n = probe.nmsrs;
  auto buf = std::make_unique<uint32_t[]>(n + 1);
  auto* list = reinterpret_cast<kvm_msr_list*>(buf.get());
  list->nmsrs = n;
  if (::ioctl(fd_.get(), KVM_GET_MSR_INDEX_LIST, list) != 0)
    return base::ErrnoError("KVM_GET_MSR_INDEX_LIST");
  return std::vector<uint32_t>(list->indices, list->indices + list->nmsrs);
}

int KvmVm::CheckExtension(unsigned cap) const {
  int r = ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap);
  return r < 0 ? 0 : r;
}

base::Status KvmVm::EnableCap(unsigned cap, uint64_t arg0) {
  kvm_enable_cap ec{};
  ec.cap = cap;
  ec.args[0] = arg0;
  if (::ioctl(fd_.get(), KVM_ENABLE_CAP, &ec) != 0)
    return base::ErrnoError("KVM_ENABLE_CAP " + std::to_string(cap));
  return base::Ok();
}

base::Status KvmVm::SetMemorySlot(uint32_t slot, uint64_t gpa, uint64_t size, void* host,
                                  uint32_t flags) {
  kvm_userspace_memory_region region{};
  region.slot = slot;
  region.flags = flags;
  region.guest_phys_addr = gpa;
  region.memory_size = size;
  region.userspace_addr = reinterpret_cast<uint64_t>(host);
  if (::ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region) != 0)
    return base::ErrnoError("KVM_SET_USER_MEMORY_REGION slot " + std::to_string(slot));
  return base::Ok();
}

base::Status KvmVm::SetTssAddr(uint64_t gpa) {
  if (::ioctl(fd_.get(), KVM_SET_TSS_ADDR, gpa) != 0) return base::ErrnoError("KVM_SET_TSS_ADDR");
  return base::Ok();
}

base::Result<KvmVcpu> KvmVm::CreateVcpu(uint32_t index, int mmap_size) {
  int raw = ::ioctl(fd_.get(), KVM_CREATE_VCPU, index);
  if (raw < 0) return base::ErrnoError("KVM_CREATE_VCPU " + std::to_string(index));
  base::Fd fd(raw);
  ASSIGN_OR_RETURN(base::Mapping map,
                   base::Mapping::Map(static_cast<size_t>(mmap_size), PROT_READ | PROT_WRITE,
                                      MAP_SHARED, fd.get()));
  return KvmVcpu(std::move(fd), std::move(map), index);
}

base::Result<kvm_clock_data> KvmVm::GetClock() const {
  kvm_clock_data data{};
  if (::ioctl(fd_.get(), KVM_GET_CLOCK, &data) != 0) return base::ErrnoError("KVM_GET_CLOCK");
  return data;
}

base::Status KvmVm::SetClock(uint64_t clock_ns) {
  kvm_clock_data data{};
  data.clock = clock_ns;
  if (::ioctl(fd_.get(), KVM_SET_CLOCK, &data) != 0) return base::ErrnoError("KVM_SET_CLOCK");
  return base::Ok();
}

base::Status KvmVm::GetDirtyLog(uint32_t slot, uint64_t* bitmap) {
  kvm_dirty_log log{};
  log.slot = slot;
  log.dirty_bitmap = bitmap;
  if (::ioctl(fd_.get(), KVM_GET_DIRTY_LOG, &log) != 0)
    return base::ErrnoError("KVM_GET_DIRTY_LOG slot " + std::to_string(slot));
  return base::Ok();
}

base::Status KvmVm::ClearDirtyLog(uint32_t slot, uint64_t first_page, uint32_t num_pages,
                                  uint64_t* bitmap) {
  kvm_clear_dirty_log clear{};
  clear.slot = slot;
  clear.first_page = first_page;
  clear.num_pages = num_pages;
  clear.dirty_bitmap = bitmap;
  if (::ioctl(fd_.get(), KVM_CLEAR_DIRTY_LOG, &clear) != 0)
    return base::ErrnoError("KVM_CLEAR_DIRTY_LOG slot " + std::to_string(slot));
  return base::Ok();
}

base::Status KvmVcpu::Run() {
  if (::ioctl(fd_.get(), KVM_RUN, 0) != 0) {
    int e = errno;
    return base::Error(base::CodeFromErrno(e), std::string("KVM_RUN: ") + std::strerror(e), e);
  }
  return base::Ok();
}

base::Status KvmVcpu::Ioctl(unsigned long request, void* arg, const char* name) const {
  if (::ioctl(fd_.get(), request, arg) < 0)
    return base::ErrnoError(std::string(name) + " on vcpu" + std::to_string(index_));
  return base::Ok();
}

base::Result<int> KvmVcpu::IoctlValue(unsigned long request, unsigned long arg,
                                      const char* name) const {
  int r = ::ioctl(fd_.get(), request, arg);
  if (r < 0) return base::ErrnoError(std::string(name) + " on vcpu" + std::to_string(index_));
  return r;
}

}  // namespace vm
