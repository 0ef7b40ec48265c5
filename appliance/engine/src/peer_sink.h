// PeerSink: the storage::BlockSink a live move's MirrorJob writes one disk
// into: every extent becomes a DiskExtent frame queued on the StreamPool
// (docs/live_move.md "Disks"). Extents are split at kRegionBytes boundaries
// and each piece goes on stream (disk * 7919 + region) % N, so all writes of
// one block travel, in order, on one stream.
//
// Flush and Finish only report the first error seen: durability is
// established once, at switchover, when the destination flushes every disk
// before it commits.
//
// Threads: thread-safe. WriteExtent is also called from guest I/O threads
// (TrackingDisk write-through): it copies the data into the queued frame and
// returns, blocking only while the stream's disk lane is full
// (back-pressure on the guest). The pool must outlive the sink.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

#include "base/mutex.h"
#include "storage/block_sink.h"
#include "stream_pool.h"

namespace appliance {

class PeerSink final : public storage::BlockSink {
 public:
  // reads_zero_initially: the destination layer reads as zeros where never
  // written (a fresh raw file, or a qcow2 with no backing file). A qcow2 top
  // over a copied backing chain is NOT: its unwritten clusters show the
  // backing layers, so zero runs must be sent.
  PeerSink(StreamPool& pool, uint16_t disk, uint64_t size, bool reads_zero_initially,
           std::string name, int cancel_fd);

  uint64_t size() const override { return size_; }
  bool reads_zero_initially() const override { return reads_zero_; }
  base::Status WriteExtent(uint64_t offset, std::span<const uint8_t> data) override;
  base::Status WriteZeroes(uint64_t offset, uint64_t len) override;
  base::Status Flush() override { return FirstError(); }
  base::Status Finish() override { return FirstError(); }
  void Abort() override {}
  const std::string& name() const override { return name_; }

  uint64_t bytes_queued() const { return bytes_.load(); }  // data + zeroed bytes

 private:
  base::Status Send(uint64_t offset, uint64_t len, const uint8_t* data);
  base::Status FirstError() const;
  base::Status Note(base::Status st);

  StreamPool& pool_;
  const uint16_t disk_;
  const uint64_t size_;
  const bool reads_zero_;
  const std::string name_;
  const int cancel_fd_;
  std::atomic<uint64_t> bytes_{0};
  mutable base::Mutex mu_;
  std::optional<base::Error> error_ GUARDED_BY(mu_);
};

}  // namespace appliance
