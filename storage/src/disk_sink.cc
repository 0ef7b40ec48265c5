// DiskSink: any Disk (raw, qcow2 overlay) as the destination of a copy.
#include <algorithm>
#include <vector>

#include "base/mutex.h"
#include "storage/block_sink.h"

namespace storage {
namespace {

class DiskSink final : public BlockSink {
 public:
  DiskSink(Disk& disk, std::string name, bool reads_zero)
      : disk_(disk), name_(std::move(name)), reads_zero_(reads_zero) {}

  uint64_t size() const override { return disk_.size(); }
  bool reads_zero_initially() const override { return reads_zero_; }
  const std::string& name() const override { return name_; }

  base::Status WriteExtent(uint64_t offset, std::span<const uint8_t> data) override {
    base::MutexLock lock(mu_);
    return disk_.Write(data.data(), data.size(), offset);
  }

  base::Status WriteZeroes(uint64_t offset, uint64_t len) override {
    base::MutexLock lock(mu_);
    return disk_.WriteZeroes(offset, len);
  }

  base::Status Flush() override {
    base::MutexLock lock(mu_);
    return disk_.Flush();
  }
  base::Status Finish() override { return Flush(); }
  void Abort() override {}

 private:
  // Disk is not thread-safe: one call into it at a time (its size() is
  // immutable, so disk_ itself carries no GUARDED_BY).
  base::Mutex mu_;
  Disk& disk_;
  std::string name_;
  bool reads_zero_;
};

}  // namespace

std::unique_ptr<BlockSink> MakeDiskSink(Disk& disk, std::string name, bool reads_zero_initially) {
  return std::make_unique<DiskSink>(disk, std::move(name), reads_zero_initially);
}

}  // namespace storage
