// Guest-page dirty tracking for one memslot: KVM's dirty log (pages the guest
// wrote) merged with GuestMemory's record of pages the VMM wrote (device DMA
// and the like, which KVM cannot see).
//
// With KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, KVM_GET_DIRTY_LOG only copies the
// bitmap and KVM_CLEAR_DIRTY_LOG re-protects exactly the harvested pages; a
// page written between the two is already in the copied bitmap, and the
// caller reads page contents after Harvest returns, so no write is lost.
// Without the capability, KVM_GET_DIRTY_LOG does both at once.
//
// Over-reporting, never under-reporting: on a shadow-paging host (PVM, see
// PLATFORM.md) KVM maps a page writable — and logs it — on the first access
// after logging starts if the guest's PTE for it is already dirty, even when
// that access is a read. The VMM presets the Dirty bit in the guest's page
// tables (boot.cc), so such first touches show up as dirty pages. A move
// sends them once more; it never misses a written page.
//
// Thread-safety: called from the Machine's control thread only.
#pragma once

#include <cstdint>
#include <vector>

#include "base/result.h"
#include "guest_memory.h"
#include "kvm.h"

namespace vm {

class DirtyLog {
 public:
  // Borrows vm and memory; both must outlive the DirtyLog.
  DirtyLog(KvmVm& vm, GuestMemory& memory, uint32_t slot, bool manual_protect);

  base::Status Enable();
  // Pages written since Enable or the previous Harvest, one bit per page.
  base::Result<std::vector<uint64_t>> Harvest();
  base::Status Disable();
  bool enabled() const { return enabled_; }

 private:
  base::Status SetSlotFlags(uint32_t flags);

  KvmVm& vm_;
  GuestMemory& memory_;
  uint32_t slot_;
  bool manual_protect_;
  bool enabled_ = false;
};

}  // namespace vm
