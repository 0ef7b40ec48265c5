// GuestMemory: the VMM's view of guest RAM (a memfd mapped into the VMM).
// Devices reach guest memory only through this class so that every byte the
// VMM writes is recorded as dirty — KVM's dirty log does not see userspace
// writes, and a live move must send those pages too.
//
// Thread-safety: Read/Write/At may be called from any thread; the dirty
// record is updated atomically.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "base/fd.h"
#include "base/mapping.h"
#include "base/result.h"

namespace vm {

inline constexpr uint64_t kPageSize = 4096;

class GuestMemory {
 public:
  // A zero-filled memfd of `bytes` (a multiple of 2 MiB), mapped shared.
  static base::Result<std::unique_ptr<GuestMemory>> Create(uint64_t bytes);

  // Host pointer for [gpa, gpa+len), or kOutOfRange if any part is outside RAM.
  // A guest-supplied address must go through this check before use.
  base::Result<uint8_t*> At(uint64_t gpa, uint64_t len);
  base::Status Read(uint64_t gpa, void* out, uint64_t len);
  // Copies into guest memory and records the pages as dirty.
  base::Status Write(uint64_t gpa, const void* data, uint64_t len);
  // Records [gpa, gpa+len) as written by the VMM (for writes done through At()).
  void MarkDirty(uint64_t gpa, uint64_t len);
  // Returns and clears the VMM-written pages since the last call (bit per page).
  std::vector<uint64_t> TakeVmmDirty();

  uint8_t* base() const { return mapping_.data(); }
  uint64_t size() const { return size_; }
  int memfd() const { return memfd_.get(); }

 private:
  GuestMemory(base::Fd memfd, base::Mapping mapping, uint64_t size);

  // The fd is declared before the mapping: members are destroyed in reverse
  // order, so the mapping goes first and the memfd closes after.
  base::Fd memfd_;
  base::Mapping mapping_;
  uint64_t size_;
  std::unique_ptr<std::atomic<uint64_t>[]> vmm_dirty_;  // bit per page
  size_t vmm_dirty_words_;
};

}  // namespace vm
