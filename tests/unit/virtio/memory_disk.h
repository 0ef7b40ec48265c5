// MemoryDisk: a storage::Disk over a std::vector for device tests, with the
// knobs a file cannot offer: counts of flushes and a switch that makes the
// next I/O fail. Raw-file behaviour is covered by the tests that use
// storage::OpenRawDisk.
#pragma once

#include <algorithm>
#include <cstring>
#include <vector>

#include "storage/disk.h"

namespace vm::test {

class MemoryDisk final : public storage::Disk {
 public:
  // State shared with the test after the disk is moved into a device.
  struct Shared {
    std::vector<uint8_t> bytes;
    int flushes = 0;
    int discards = 0;      // Discard calls that succeeded
    int write_zeroes = 0;  // WriteZeroes calls that succeeded
    bool fail_io = false;  // every Read/Write/Flush fails while set
    bool read_only = false;
  };

  explicit MemoryDisk(Shared* shared) : s_(shared) {}

  base::Status Read(void* buf, size_t len, uint64_t offset) override {
    RETURN_IF_ERROR(Check(len, offset));
    std::memcpy(buf, s_->bytes.data() + offset, len);
    return base::Ok();
  }
  base::Status Write(const void* buf, size_t len, uint64_t offset) override {
    if (s_->read_only)
      return base::Error(base::Code::kPermissionDenied, "memory disk is read-only");
    RETURN_IF_ERROR(Check(len, offset));
    std::memcpy(s_->bytes.data() + offset, buf, len);
    return base::Ok();
  }
  base::Status Discard(uint64_t offset, uint64_t len) override {
    RETURN_IF_ERROR(Zero(len, offset));
    ++s_->discards;
    return base::Ok();
  }
  base::Status WriteZeroes(uint64_t offset, uint64_t len) override {
    RETURN_IF_ERROR(Zero(len, offset));
    ++s_->write_zeroes;
    return base::Ok();
  }
  base::Status Flush() override {
    if (s_->fail_io) return base::Error(base::Code::kUnavailable, "injected flush failure");
    ++s_->flushes;
    return base::Ok();
  }
  uint64_t size() const override { return s_->bytes.size(); }
  bool read_only() const override { return s_->read_only; }
  base::Result<storage::Extent> MapExtent(uint64_t offset, uint64_t max_len) override {
    RETURN_IF_ERROR(Check(0, offset));
    return storage::Extent{offset, std::min<uint64_t>(max_len, s_->bytes.size() - offset),
                           storage::ExtentKind::kData};
  }

 private:
  base::Status Zero(uint64_t len, uint64_t offset) {
    if (s_->read_only)
      return base::Error(base::Code::kPermissionDenied, "memory disk is read-only");
    RETURN_IF_ERROR(Check(len, offset));
    std::memset(s_->bytes.data() + offset, 0, len);
    return base::Ok();
  }
  base::Status Check(uint64_t len, uint64_t offset) const {
    if (s_->fail_io) return base::Error(base::Code::kUnavailable, "injected I/O failure");
    if (offset > s_->bytes.size() || len > s_->bytes.size() - offset)
      return base::Error(base::Code::kOutOfRange, "memory disk access beyond the end");
    return base::Ok();
  }
  Shared* s_;
};

}  // namespace vm::test
