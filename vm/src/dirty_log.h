// Guest-page dirty tracking for one memslot: KVM's dirty log (pages the guest
// wrote) merged with GuestMemory's record of pages the VMM wrote (device DMA
// and the like, which KVM cannot see).
//
// With KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, KVM_GET_DIRTY_LOG only copies the
// bitmap and KVM_CLEAR_DIRTY_LOG clears and re-protects exactly the harvested
// pages, so a harvest may run while the vCPUs do and loses no write:
//   - a page written before GET is in the result;
//   - a harvested page written again between GET and CLEAR is writable then
//     (no new log entry), but the caller reads page contents only after
//     Harvest returns, so it sees that write;
//   - a page first written between GET and CLEAR keeps its bit in KVM's
//     bitmap (CLEAR only clears harvested bits): it is in the next harvest;
//   - a page written after CLEAR faults on the re-protected mapping and is
//     logged for the next harvest.
// VMM writes are recorded after the bytes are written (GuestMemory), and
// taken after the CLEAR with an atomic exchange per word, so the same holds
// for them. Without the capability, KVM_GET_DIRTY_LOG does both at once.
// tests/unit/vm/live_move_test.cc (HarvestWhileRunningLosesNothing) keeps a
// shadow copy from harvests alone while two vCPUs rewrite pages and checks it
// equals guest RAM.
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
