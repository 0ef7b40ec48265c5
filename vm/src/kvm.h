// Move-only owners of the three kinds of KVM file descriptor: the system
// (/dev/kvm), one VM, and one vCPU with its shared kvm_run page. Every ioctl
// the VMM issues goes through these, so each failure names the ioctl.
//
// Lifetimes: a KvmVcpu and a KvmVm keep working after the KvmSystem that made
// them is destroyed (the kernel holds its own references), but Machine keeps
// the system alive anyway for its capability queries.
#pragma once

#include "kvm_uapi.h"

#include <cstdint>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/mapping.h"
#include "base/result.h"

namespace vm {

class KvmVm;
class KvmVcpu;

class KvmSystem {
 public:
  // Opens the device, checks the API version and every capability the VMM
  // relies on; a missing one is a kFailedPrecondition error naming it.
  static base::Result<KvmSystem> Open(const std::string& device);

  base::Result<KvmVm> CreateVm() const;
  // KVM_CHECK_EXTENSION on the system fd; 0 if unsupported.
  int CheckExtension(unsigned cap) const;
  // KVM_GET_SUPPORTED_CPUID: what this host's KVM lets a guest see.
  base::Result<std::vector<kvm_cpuid_entry2>> SupportedCpuid() const;
  // KVM_GET_MSR_INDEX_LIST: the MSRs userspace may save and restore.
  base::Result<std::vector<uint32_t>> MsrIndexList() const;
  int vcpu_mmap_size() const { return vcpu_mmap_size_; }
  const std::string& device() const { return device_; }

 private:
  KvmSystem(base::Fd fd, std::string device, int mmap_size)
      : fd_(std::move(fd)), device_(std::move(device)), vcpu_mmap_size_(mmap_size) {}
  base::Fd fd_;
  std::string device_;
  int vcpu_mmap_size_;
};

class KvmVm {
 public:
  int CheckExtension(unsigned cap) const;
  base::Status EnableCap(unsigned cap, uint64_t arg0);
  base::Status SetMemorySlot(uint32_t slot, uint64_t gpa, uint64_t size, void* host,
                             uint32_t flags);
  base::Status SetTssAddr(uint64_t gpa);
  base::Result<KvmVcpu> CreateVcpu(uint32_t index, int mmap_size);
  base::Result<kvm_clock_data> GetClock() const;
  base::Status SetClock(uint64_t clock_ns);
  // Copies the slot's dirty bitmap (one bit per 4 KiB page) into bitmap.
  base::Status GetDirtyLog(uint32_t slot, uint64_t* bitmap);
  // Re-arms write protection for the pages in bitmap (needs manual protect).
  base::Status ClearDirtyLog(uint32_t slot, uint64_t first_page, uint32_t num_pages,
                             uint64_t* bitmap);
  int fd() const { return fd_.get(); }

 private:
  friend class KvmSystem;
  explicit KvmVm(base::Fd fd) : fd_(std::move(fd)) {}
  base::Fd fd_;
};

class KvmVcpu {
 public:
  base::Status Run();  // KVM_RUN; EINTR is returned as kUnavailable with errno EINTR
  kvm_run* run() const { return reinterpret_cast<kvm_run*>(run_map_.data()); }
  uint32_t index() const { return index_; }

  // Thin typed wrappers: ioctl(fd, request, arg) with an error naming the
  // request and the vCPU.
  base::Status Ioctl(unsigned long request, void* arg, const char* name) const;
  base::Result<int> IoctlValue(unsigned long request, unsigned long arg, const char* name) const;

 private:
  friend class KvmVm;
  KvmVcpu(base::Fd fd, base::Mapping run_map, uint32_t index)
      : fd_(std::move(fd)), run_map_(std::move(run_map)), index_(index) {}
  // fd_ is declared before the kvm_run mapping so the mapping is unmapped
  // first (members are destroyed in reverse order).
  base::Fd fd_;
  base::Mapping run_map_;
  uint32_t index_;
};

}  // namespace vm
