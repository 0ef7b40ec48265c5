#include "dirty_log.h"

namespace vm {

DirtyLog::DirtyLog(KvmVm& vm, GuestMemory& memory, uint32_t slot, bool manual_protect)
    : vm_(vm), memory_(memory), slot_(slot), manual_protect_(manual_protect) {}

base::Status DirtyLog::SetSlotFlags(uint32_t flags) {
  return vm_.SetMemorySlot(slot_, 0, memory_.size(), memory_.base(), flags);
}

base::Status DirtyLog::Enable() {
  if (enabled_) return base::Ok();
  if (auto st = SetSlotFlags(KVM_MEM_LOG_DIRTY_PAGES); !st)
    return st.error().Wrap("enable dirty log");
  // The interval starts now: VMM writes from before (loading the program,
  // writing the parameter page) are not part of it.
  (void)memory_.TakeVmmDirty();  // dropped on purpose: taking them clears them
  enabled_ = true;
  return base::Ok();
}

base::Result<std::vector<uint64_t>> DirtyLog::Harvest() {
  if (!enabled_) return base::Error(base::Code::kFailedPrecondition, "dirty log is not enabled");
  uint64_t pages = memory_.size() / kPageSize;
  std::vector<uint64_t> bitmap((pages + 63) / 64, 0);
  RETURN_IF_ERROR(vm_.GetDirtyLog(slot_, bitmap.data()));
  if (manual_protect_) {
    // One clear for the whole slot; KVM only touches pages whose bit is set.
    // num_pages must be a multiple of 64 unless it reaches the slot's end.
    RETURN_IF_ERROR(vm_.ClearDirtyLog(slot_, 0, static_cast<uint32_t>(pages), bitmap.data()));
  }
  std::vector<uint64_t> vmm = memory_.TakeVmmDirty();
  if (vmm.size() != bitmap.size())
    return base::Error(base::Code::kInternal, "VMM dirty bitmap has " + std::to_string(vmm.size()) +
                                                  " words, slot has " +
                                                  std::to_string(bitmap.size()));
  for (size_t i = 0; i < bitmap.size(); ++i) bitmap[i] |= vmm[i];
  return bitmap;
}

base::Status DirtyLog::Disable() {
  if (!enabled_) return base::Ok();
  if (auto st = SetSlotFlags(0); !st) return st.error().Wrap("disable dirty log");
  enabled_ = false;
  return base::Ok();
}

}  // namespace vm
