// What both engines share: the open file, request validation (so both reject
// the same requests with the same errors) and the single-request calls, which
// are batches of one.
#pragma once

#include <string>

#include "base/fd.h"
#include "storage/block_file.h"

namespace storage {

class BlockFileBase : public BlockFile {
 public:
  base::Result<size_t> ReadAt(void* buf, size_t len, uint64_t offset) override;
  base::Status WriteAt(const void* buf, size_t len, uint64_t offset) override;
  base::Result<uint64_t> Size() override;
  base::Status Truncate(uint64_t size) override;
  base::Status PunchHole(uint64_t offset, uint64_t len) override;
  base::Status ZeroRange(uint64_t offset, uint64_t len) override;
  const std::string& path() const override { return path_; }
  std::optional<FileId> id() const override;

 protected:
  BlockFileBase(base::Fd fd, std::string path, const OpenOptions& options)
      : fd_(std::move(fd)), path_(std::move(path)), options_(options) {}

  // kPermissionDenied for writes to a read-only file, kInvalidArgument for
  // requests O_DIRECT cannot do or offsets past the largest file offset.
  base::Status CheckRequests(std::span<const IoRequest> requests) const;
  // "read /path at offset 4096 (8192 bytes)", the start of every I/O error.
  std::string Describe(IoOp op, uint64_t offset, size_t len) const;
  // A completion that ended here (not at the requested end) in O_DIRECT mode
  // can only be end of file: the kernel returns unaligned counts only there,
  // and resubmitting from an unaligned offset would fail with EINVAL.
  // fallocate(mode) over the range, with the checks and errors of a write.
  base::Status Fallocate(int mode, std::string_view what, uint64_t offset, uint64_t len);
  bool UnalignedEnd(uint64_t offset) const {
    return options_.direct && offset % kDirectAlignment != 0;
  }

  // Declared first so it is destroyed last: a derived engine tears down its
  // ring (and with it any reference to this fd) before the fd closes.
  base::Fd fd_;
  std::string path_;
  OpenOptions options_;
};

}  // namespace storage
