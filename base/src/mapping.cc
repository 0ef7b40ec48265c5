#include "base/mapping.h"

#include <sys/mman.h>

#include <string>

namespace base {

Mapping& Mapping::operator=(Mapping&& o) noexcept {
  if (this != &o) {
    if (addr_) ::munmap(addr_, len_);
    addr_ = std::exchange(o.addr_, nullptr);
    len_ = std::exchange(o.len_, 0);
  }
  return *this;
}

Mapping::~Mapping() {
  if (addr_) ::munmap(addr_, len_);
}

Result<Mapping> Mapping::Map(size_t len, int prot, int flags, int fd, off_t offset) {
  void* p = ::mmap(nullptr, len, prot, flags, fd, offset);
  if (p == MAP_FAILED) return ErrnoError("mmap " + std::to_string(len) + " bytes");
  return Mapping(p, len);
}

}  // namespace base
