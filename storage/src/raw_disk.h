// A raw image: guest byte N is file byte N. File holes (SEEK_HOLE) report as
// zero extents. Discard punches a hole, WriteZeroes zeroes the range in place
// (fallocate); where the file system cannot, both write zeros.
#pragma once

#include <memory>

#include "base/fd.h"
#include "storage/disk.h"

namespace storage {

class RawDisk final : public Disk {
 public:
  // `file` is owned by the disk. size is the file size rounded down to 512.
  // `seek_fd` is a read-only descriptor of the same file for SEEK_DATA and
  // SEEK_HOLE (BlockFile does not expose its own).
  RawDisk(std::unique_ptr<BlockFile> file, base::Fd seek_fd, uint64_t size, bool read_only)
      : file_(std::move(file)), seek_fd_(std::move(seek_fd)), size_(size), read_only_(read_only) {}

  base::Status Read(void* buf, size_t len, uint64_t offset) override;
  base::Status Write(const void* buf, size_t len, uint64_t offset) override;
  base::Status Discard(uint64_t offset, uint64_t len) override;
  base::Status WriteZeroes(uint64_t offset, uint64_t len) override;
  base::Status Flush() override;
  uint64_t size() const override { return size_; }
  bool read_only() const override { return read_only_; }
  base::Result<Extent> MapExtent(uint64_t offset, uint64_t max_len) override;

 private:
  base::Status CheckRange(std::string_view op, uint64_t len, uint64_t offset) const;
  base::Status CheckWritable(std::string_view op) const;
  base::Status WriteZeroBuffers(uint64_t offset, uint64_t len);

  std::unique_ptr<BlockFile> file_;
  base::Fd seek_fd_;
  uint64_t size_;
  bool read_only_;
};

}  // namespace storage
