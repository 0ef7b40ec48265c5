#include "io_bus.h"

#include <cstdio>
#include <cstring>
#include <string>

#include "base/log.h"
#include "vm/guest_abi.h"

namespace vm {
namespace {

constexpr size_t kMaxLoggedAddresses = 64;

}  // namespace

void IoBus::AddMmio(uint64_t base, uint64_t size, MmioDevice& device) {
  mmio_.push_back(Region{base, size, &device});
}

const IoBus::Region* IoBus::FindMmio(uint64_t addr, uint32_t len) const {
  for (const auto& r : mmio_) {
    if (addr >= r.base && addr - r.base < r.size && len <= r.size - (addr - r.base)) return &r;
  }
  return nullptr;
}

void IoBus::PortIn(uint16_t port, uint8_t* data, uint32_t size) {
  // A wide access covers consecutive ports, as on an ISA bus.
  for (uint32_t i = 0; i < size; ++i) {
    uint16_t p = static_cast<uint16_t>(port + i);
    if (p >= FERRY_SERIAL_PORT && p < FERRY_SERIAL_PORT + 8) {
      data[i] = serial_.PortIn(static_cast<uint16_t>(p - FERRY_SERIAL_PORT));
    } else {
      data[i] = 0xff;
      Unknown("port read", p, 1, false);
    }
  }
}

void IoBus::PortOut(uint16_t port, const uint8_t* data, uint32_t size) {
  for (uint32_t i = 0; i < size; ++i) {
    uint16_t p = static_cast<uint16_t>(port + i);
    if (p >= FERRY_SERIAL_PORT && p < FERRY_SERIAL_PORT + 8) {
      serial_.PortOut(static_cast<uint16_t>(p - FERRY_SERIAL_PORT), data[i]);
    } else {
      Unknown("port write", p, 1, true);
    }
  }
}

void IoBus::MmioRead(uint64_t addr, uint8_t* data, uint32_t len) {
  if (const Region* r = FindMmio(addr, len)) {
    r->device->MmioRead(addr - r->base, data, len);
    return;
  }
  std::memset(data, 0xff, len);
  Unknown("MMIO read", addr, len, false);
}

void IoBus::MmioWrite(uint64_t addr, const uint8_t* data, uint32_t len) {
  if (const Region* r = FindMmio(addr, len)) {
    r->device->MmioWrite(addr - r->base, data, len);
    return;
  }
  Unknown("MMIO write", addr, len, true);
}

void IoBus::Unknown(const char* kind, uint64_t addr, uint32_t len, bool write) {
  unknown_.fetch_add(1, std::memory_order_relaxed);
  bool is_mmio = kind[0] == 'M';
  base::MutexLock lock(log_mu_);
  if (logged_.size() >= kMaxLoggedAddresses || !logged_.insert({is_mmio, addr}).second) return;
  char msg[128];
  std::snprintf(msg, sizeof msg, "guest %s of %u byte(s) at 0x%llx: no device there (%s)", kind,
                len, static_cast<unsigned long long>(addr),
                write ? "write ignored" : "reads as all ones");
  base::LogWarning(msg);
}

}  // namespace vm
