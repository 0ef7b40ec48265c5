// virtio-mmio (version 2, virtio 1.x) block device with one split virtqueue,
// backed by a storage::Disk. Requests are processed synchronously when the
// guest writes QueueNotify, on that vCPU's thread, so a paused VM never has a
// request in flight. No interrupts: the guest polls the used ring.
#pragma once

#include <functional>
#include <memory>
#include <mutex>

#include "guest_memory.h"
#include "mmio_device.h"
#include "storage/disk.h"

namespace vm {

using DiskTransform = std::function<base::Result<std::unique_ptr<storage::Disk>>(
    std::unique_ptr<storage::Disk>& current)>;

// Longest first_error kept (the cause is cut there): it travels in the
// worker's status reply.
inline constexpr size_t kMaxDiskErrorBytes = 1024;

struct VirtioBlkCounters {
  uint64_t reads = 0, writes = 0, flushes = 0;  // requests that succeeded
  uint64_t errors = 0;  // requests answered IOERR for any reason, malformed ones included
  // Requests the disk failed (the storage::Disk returned an error, e.g. a
  // damaged qcow2 table, a corrupt compressed cluster, EIO); each is also in
  // `errors`. Discard and write-zeroes count as writes.
  uint64_t read_errors = 0, write_errors = 0, flush_errors = 0;
  // The first disk failure, "read at offset 8192 (4096 bytes): <cause>"
  // (empty if none), and when it happened (Unix ms).
  std::string first_error;
  int64_t first_error_unix_ms = 0;
};

// A disk failure is the guest's to handle, as with QEMU's werror=report: the
// request gets IOERR and the VM keeps running. The device counts it, keeps
// the first one (counters()) and logs that one with base::LogError (the
// worker's log); later ones are counted only, so a guest retrying a bad
// sector cannot flood the log.
class VirtioBlk final : public MmioDevice {
 public:
  // Borrows memory (must outlive the device); owns the disk. name says which
  // disk this is in the log ("disk 0 (/srv/web1.qcow2)").
  VirtioBlk(GuestMemory& memory, std::unique_ptr<storage::Disk> disk,
            std::string name = "virtio-blk");
  ~VirtioBlk() override;

  void MmioRead(uint64_t offset, uint8_t* data, uint32_t len) override;
  void MmioWrite(uint64_t offset, const uint8_t* data, uint32_t len) override;
  base::Status Drain() override;
  std::string SaveState() const override;
  base::Status RestoreState(std::string_view blob) override;

  // Thread-safe (the device mutex): vCPU threads update them, the control
  // thread reads.
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
