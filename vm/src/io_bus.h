// Routes the guest's port I/O and MMIO exits to devices: the serial port and
// the MmioDevices (virtio-blk). Accesses nobody claims read as all ones and
// drop writes, like an empty bus; they are counted and each address is
// logged once, so a misbehaving guest cannot flood the log.
//
// Thread-safety: after set-up (AddMmio), all methods may be called from any
// vCPU thread. Devices are borrowed and must outlive the bus.
#pragma once

#include <atomic>
#include <cstdint>
#include <set>
#include <utility>
#include <vector>

#include "base/mutex.h"
#include "mmio_device.h"
#include "serial.h"

namespace vm {

class IoBus {
 public:
  explicit IoBus(Serial& serial) : serial_(serial) {}

  void AddMmio(uint64_t base, uint64_t size, MmioDevice& device);

  void PortIn(uint16_t port, uint8_t* data, uint32_t size);
  void PortOut(uint16_t port, const uint8_t* data, uint32_t size);
  void MmioRead(uint64_t addr, uint8_t* data, uint32_t len);
  void MmioWrite(uint64_t addr, const uint8_t* data, uint32_t len);

  uint64_t unknown_accesses() const { return unknown_.load(std::memory_order_relaxed); }

 private:
  struct Region {
    uint64_t base, size;
    MmioDevice* device;
  };
  const Region* FindMmio(uint64_t addr, uint32_t len) const;
  void Unknown(const char* kind, uint64_t addr, uint32_t len, bool write);

  Serial& serial_;
  std::vector<Region> mmio_;  // fixed after set-up; read without a lock
  std::atomic<uint64_t> unknown_{0};
  base::Mutex log_mu_;
  std::set<std::pair<bool, uint64_t>> logged_ GUARDED_BY(log_mu_);  // (is_mmio, address)
};

}  // namespace vm
