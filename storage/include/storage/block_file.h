// BlockFile: positioned I/O on one file through an I/O engine. Engines:
// io_uring (the production path) and plain pread/pwrite (the reference and
// test oracle). Not thread-safe: one owner thread, or callers serialise.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/result.h"

namespace storage {

enum class IoEngine { kIoUring = 1, kSync = 2 };

struct OpenOptions {
  bool writable = true;
  bool create = false;      // create if missing (size stays as is)
  bool direct = false;      // O_DIRECT; buffers and offsets must be 4 KiB aligned
  IoEngine engine = IoEngine::kIoUring;
  unsigned queue_depth = 64;
};

class BlockFile {
 public:
  virtual ~BlockFile() = default;
  // Short reads happen only at end of file; the rest reads as zeros is the
  // caller's business. Returns bytes read.
  virtual base::Result<size_t> ReadAt(void* buf, size_t len, uint64_t offset) = 0;
  // Writes everything or fails (ENOSPC -> kResourceExhausted).
  virtual base::Status WriteAt(const void* buf, size_t len, uint64_t offset) = 0;
  // Returns once all completed writes are on stable storage (fdatasync).
  virtual base::Status Flush() = 0;
  virtual base::Result<uint64_t> Size() = 0;
  virtual base::Status Truncate(uint64_t size) = 0;
  virtual const std::string& path() const = 0;
};

base::Result<std::unique_ptr<BlockFile>> OpenBlockFile(const std::string& path,
                                                       const OpenOptions& options);

}  // namespace storage
