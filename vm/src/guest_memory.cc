#include "guest_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace vm {
namespace {

constexpr uint64_t kSizeAlignment = 2ull << 20;  // the VMM maps RAM with 2 MiB pages

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

base::Result<std::unique_ptr<GuestMemory>> GuestMemory::Create(uint64_t bytes) {
  if (bytes == 0 || bytes % kSizeAlignment != 0)
    return base::Error(base::Code::kInvalidArgument, "guest memory size " + std::to_string(bytes) +
                                                         " is not a positive multiple of 2 MiB");
  int raw = ::memfd_create("ferry-guest-ram", MFD_CLOEXEC);
  if (raw < 0) return base::ErrnoError("memfd_create for guest memory");
  base::Fd memfd(raw);
  if (::ftruncate(memfd.get(), static_cast<off_t>(bytes)) != 0)
    return base::ErrnoError("ftruncate guest memory memfd to " + std::to_string(bytes) + " bytes");
  ASSIGN_OR_RETURN(base::Mapping mapping,
                   base::Mapping::Map(bytes, PROT_READ | PROT_WRITE, MAP_SHARED, memfd.get()));
  return std::unique_ptr<GuestMemory>(new GuestMemory(std::move(memfd), std::move(mapping), bytes));
}

GuestMemory::GuestMemory(base::Fd memfd, base::Mapping mapping, uint64_t size)
    : memfd_(std::move(memfd)), mapping_(std::move(mapping)), size_(size) {
  uint64_t pages = size_ / kPageSize;
  vmm_dirty_words_ = (pages + 63) / 64;
  vmm_dirty_ = std::make_unique<std::atomic<uint64_t>[]>(vmm_dirty_words_);
  for (size_t i = 0; i < vmm_dirty_words_; ++i) vmm_dirty_[i].store(0, std::memory_order_relaxed);
}

base::Result<uint8_t*> GuestMemory::At(uint64_t gpa, uint64_t len) {
  // Written so that no sum can overflow: a guest controls both gpa and len.
  if (gpa > size_ || len > size_ - gpa)
    return base::Error(base::Code::kOutOfRange, "guest range [" + Hex(gpa) + ", +" + Hex(len) +
                                                    ") is outside guest RAM of " + Hex(size_) +
                                                    " bytes");
  return mapping_.data() + gpa;
}

base::Status GuestMemory::Read(uint64_t gpa, void* out, uint64_t len) {
  ASSIGN_OR_RETURN(uint8_t * p, At(gpa, len));
  if (len != 0) std::memcpy(out, p, len);
  return base::Ok();
}

base::Status GuestMemory::Write(uint64_t gpa, const void* data, uint64_t len) {
  ASSIGN_OR_RETURN(uint8_t * p, At(gpa, len));
  if (len != 0) std::memcpy(p, data, len);
  MarkDirty(gpa, len);
  return base::Ok();
}

void GuestMemory::MarkDirty(uint64_t gpa, uint64_t len) {
  if (len == 0 || gpa >= size_) return;
  if (len > size_ - gpa) len = size_ - gpa;  // clamp: callers passed At() already
  uint64_t first = gpa / kPageSize;
  uint64_t last = (gpa + len - 1) / kPageSize;
  // Release: a harvest that sees the bit (TakeVmmDirty's acquire exchange)
  // also sees the bytes written before this call, so a live move that copies
  // the page after the harvest copies them.
  for (uint64_t page = first; page <= last; ++page)
    vmm_dirty_[page / 64].fetch_or(1ull << (page % 64), std::memory_order_release);
}

std::vector<uint64_t> GuestMemory::TakeVmmDirty() {
  std::vector<uint64_t> out(vmm_dirty_words_);
  // exchange per word: a bit set concurrently lands either in this result or
  // in the next one, never lost.
  for (size_t i = 0; i < vmm_dirty_words_; ++i)
    out[i] = vmm_dirty_[i].exchange(0, std::memory_order_acq_rel);
  return out;
}

}  // namespace vm
