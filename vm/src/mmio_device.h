// A device on the guest's MMIO bus. The vCPU exit loop dispatches KVM_EXIT_MMIO
// accesses in [base, base + size) to Read/Write with the offset from base.
// Read/Write may be called from any vCPU thread; a device serialises itself.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace vm {

class MmioDevice {
 public:
  virtual ~MmioDevice() = default;
  virtual void MmioRead(uint64_t offset, uint8_t* data, uint32_t len) = 0;
  virtual void MmioWrite(uint64_t offset, const uint8_t* data, uint32_t len) = 0;
  // Called with all vCPUs paused: completes or fails any in-flight request so
  // the saved state has nothing half done.
  virtual base::Status Drain() = 0;
  // The complete guest-visible device state as a versioned blob (explicit
  // little-endian fields), and its inverse. Restore rejects a malformed blob.
  virtual std::string SaveState() const = 0;
  virtual base::Status RestoreState(std::string_view blob) = 0;
};

}  // namespace vm
