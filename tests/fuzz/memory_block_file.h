// MemoryBlockFile: a BlockFile over a byte vector, so the fuzzer exercises the
// qcow2 code with no file system underneath. Grows on write up to a cap
// (beyond it: kResourceExhausted, like a full disk).
#pragma once

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "storage/block_file.h"

namespace storage::fuzz {

class MemoryBlockFile final : public BlockFile {
 public:
  MemoryBlockFile(std::string path, std::vector<uint8_t> bytes, uint64_t max_size, bool writable)
      : path_(std::move(path)),
        bytes_(std::move(bytes)),
        max_size_(max_size),
        writable_(writable) {}

  base::Result<size_t> ReadAt(void* buf, size_t len, uint64_t offset) override {
    if (offset >= bytes_.size()) return size_t{0};
    size_t n = std::min<uint64_t>(len, bytes_.size() - offset);
    std::memcpy(buf, bytes_.data() + offset, n);
    return n;
  }
  base::Status WriteAt(const void* buf, size_t len, uint64_t offset) override {
    if (!writable_) return base::Error(base::Code::kPermissionDenied, path_ + " is read-only");
    if (offset > max_size_ || len > max_size_ - offset) {
      return base::Error(base::Code::kResourceExhausted, "write " + path_ + ": over the cap");
    }
    if (offset + len > bytes_.size()) bytes_.resize(offset + len, 0);
    std::memcpy(bytes_.data() + offset, buf, len);
    return base::Ok();
  }
  base::Result<std::vector<size_t>> SubmitBatch(std::span<const IoRequest> requests) override {
    std::vector<size_t> done;
    for (const auto& r : requests) {
      if (r.op == IoOp::kRead) {
        ASSIGN_OR_RETURN(size_t n, ReadAt(r.buf, r.len, r.offset));
        done.push_back(n);
      } else {
        RETURN_IF_ERROR(WriteAt(r.buf, r.len, r.offset));
        done.push_back(r.len);
      }
    }
    return done;
  }
  base::Status Flush() override { return base::Ok(); }
  // Zeros what lies inside the file; the size never changes (KEEP_SIZE).
  base::Status PunchHole(uint64_t offset, uint64_t len) override {
    if (!writable_) return base::Error(base::Code::kPermissionDenied, path_ + " is read-only");
    if (offset < bytes_.size()) {
      uint64_t n = std::min<uint64_t>(len, bytes_.size() - offset);
      std::memset(bytes_.data() + offset, 0, n);
    }
    return base::Ok();
  }
  base::Status ZeroRange(uint64_t offset, uint64_t len) override { return PunchHole(offset, len); }
  base::Result<uint64_t> Size() override { return uint64_t(bytes_.size()); }
  base::Status Truncate(uint64_t size) override {
    if (size > max_size_) return base::Error(base::Code::kResourceExhausted, "over the cap");
    bytes_.resize(size);
    return base::Ok();
  }
  const std::string& path() const override { return path_; }
  IoEngine engine() const override { return IoEngine::kSync; }

 private:
  std::string path_;
  std::vector<uint8_t> bytes_;
  uint64_t max_size_;
  bool writable_;
};

}  // namespace storage::fuzz
