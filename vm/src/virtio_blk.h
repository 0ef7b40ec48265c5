// virtio-mmio (version 2, virtio 1.x) block device with one split virtqueue,
// backed by a storage::Disk. Requests are processed synchronously when the
// guest writes QueueNotify, on that vCPU's thread, so a paused VM never has a
// request in flight. No interrupts: the guest polls the used ring.
#pragma once

#include <functional>
#include <memory>
#include <mutex>

#include "mmio_device.h"
#include "guest_memory.h"
#include "storage/disk.h"

namespace vm {

using DiskTransform =
    std::function<base::Result<std::unique_ptr<storage::Disk>>(std::unique_ptr<storage::Disk>& current)>;

struct VirtioBlkCounters {
  uint64_t reads = 0, writes = 0, flushes = 0, errors = 0;
};

class VirtioBlk final : public MmioDevice {
 public:
  // Borrows memory (must outlive the device); owns the disk.
  VirtioBlk(GuestMemory& memory, std::unique_ptr<storage::Disk> disk);
  ~VirtioBlk() override;

  void MmioRead(uint64_t offset, uint8_t* data, uint32_t len) override;
  void MmioWrite(uint64_t offset, const uint8_t* data, uint32_t len) override;
  base::Status Drain() override;
  std::string SaveState() const override;
  base::Status RestoreState(std::string_view blob) override;

  VirtioBlkCounters counters() const;

  // Replaces the disk under the device while no request runs: fn is called
  // with the device mutex held (a vCPU that notifies meanwhile waits), so it
  // must be quick. See Machine::TransformDisk for the contract of fn.
  base::Status TransformDisk(const DiskTransform& fn);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vm
