// A raw image: guest byte N is file byte N.
#pragma once

#include <memory>

#include "storage/disk.h"

namespace storage {

class RawDisk final : public Disk {
 public:
  // `file` is owned by the disk. size is the file size rounded down to 512.
  RawDisk(std::unique_ptr<BlockFile> file, uint64_t size, bool read_only)
      : file_(std::move(file)), size_(size), read_only_(read_only) {}

  base::Status Read(void* buf, size_t len, uint64_t offset) override;
  base::Status Write(const void* buf, size_t len, uint64_t offset) override;
  base::Status Flush() override;
  uint64_t size() const override { return size_; }
  bool read_only() const override { return read_only_; }

 private:
  base::Status CheckRange(std::string_view op, size_t len, uint64_t offset) const;

  std::unique_ptr<BlockFile> file_;
  uint64_t size_;
  bool read_only_;
};

}  // namespace storage
