// BlockFile: positioned I/O on one file through an I/O engine. Engines:
// io_uring (the production path) and plain pread/pwrite (the reference and
// test oracle). Both give identical results and identical error codes.
//
// PunchHole and ZeroRange are fallocate(2) in both engines (metadata
// operations; the call returns when the file system has done them).
//
// Threads: not thread-safe. One thread uses a BlockFile at a time; the
// io_uring engine's ring is private to its BlockFile and is never shared.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/escape.h"
#include "base/result.h"

namespace storage {

enum class IoEngine { kIoUring = 1, kSync = 2 };

// O_DIRECT requires buffers, offsets and lengths aligned to this. 4 KiB covers
// every logical block size in use; requests that are not aligned fail with
// kInvalidArgument before they reach the kernel.
inline constexpr size_t kDirectAlignment = 4096;

struct OpenOptions {
  bool writable = true;
  bool create = false;  // create if missing (size stays as is)
  bool direct = false;  // O_DIRECT; see kDirectAlignment
  IoEngine engine = IoEngine::kIoUring;
  unsigned queue_depth = 64;   // io_uring: requests in flight at once, 1..4096
  size_t max_chunk = 1 << 20;  // largest single request given to the kernel; a
                               // multiple of kDirectAlignment
  // io_uring: a pool of this many bounce buffers (at most queue_depth are
  // used), registered with the kernel once (io_uring_register_buffers), each
  // fixed_buffer_size bytes and aligned to kDirectAlignment. A chunk that
  // fits in one goes through it with READ_FIXED/WRITE_FIXED: the kernel skips
  // pinning the caller's pages per request (what costs most with O_DIRECT),
  // for one memcpy of at most fixed_buffer_size bytes. 0 turns the pool off.
  // The file descriptor is registered too (IOSQE_FIXED_FILE). If the kernel
  // refuses either registration the engine works without it.
  unsigned fixed_buffers = 32;
  size_t fixed_buffer_size = 64 << 10;  // a multiple of kDirectAlignment, <= 1 MiB
};

enum class IoOp { kRead = 1, kWrite = 2 };

// Which file an open BlockFile is (st_dev, st_ino): two paths, or a path and
// a symlink, name the same file exactly when their ids are equal.
struct FileId {
  uint64_t device = 0;
  uint64_t inode = 0;
  bool operator==(const FileId&) const = default;
};

// One request of a batch. `buf` is the destination of a read or the source of
// a write (never modified for writes); it must stay valid until the batch
// returns.
struct IoRequest {
  IoOp op = IoOp::kRead;
  void* buf = nullptr;
  size_t len = 0;
  uint64_t offset = 0;
};

class BlockFile {
 public:
  virtual ~BlockFile() = default;
  // Short reads happen only at end of file; the rest reads as zeros is the
  // caller's business. Returns bytes read.
  virtual base::Result<size_t> ReadAt(void* buf, size_t len, uint64_t offset) = 0;
  // Writes everything or fails (ENOSPC -> kResourceExhausted naming the path).
  virtual base::Status WriteAt(const void* buf, size_t len, uint64_t offset) = 0;
  // Runs the requests with up to queue_depth in flight and returns when all
  // have finished: the bytes each transferred (reads short only at end of
  // file; writes always len). Requests of one batch are unordered, so
  // overlapping ones give undefined contents. On failure, returns the first
  // error only after every submitted request has completed (buffers are free
  // again); other requests of the batch may or may not have been done.
  virtual base::Result<std::vector<size_t>> SubmitBatch(std::span<const IoRequest> requests) = 0;
  // Returns once all completed writes are on stable storage (fdatasync).
  virtual base::Status Flush() = 0;
  // Deallocates [offset, offset + len): it reads as zeros afterwards and the
  // file system frees the blocks (fallocate PUNCH_HOLE | KEEP_SIZE). The file
  // size never changes. kUnimplemented (errno EOPNOTSUPP) where the file
  // system cannot; the caller then writes zeros if it needs them.
  virtual base::Status PunchHole(uint64_t offset, uint64_t len) = 0;
  // Makes [offset, offset + len) read as zeros and keeps it allocated
  // (fallocate ZERO_RANGE | KEEP_SIZE); kUnimplemented like PunchHole.
  virtual base::Status ZeroRange(uint64_t offset, uint64_t len) = 0;
  virtual base::Result<uint64_t> Size() = 0;
  virtual base::Status Truncate(uint64_t size) = 0;
  virtual const std::string& path() const = 0;
  // path() as messages show it (base::Escaped): a backing file's path comes
  // from the image that names it, so it may hold any byte.
  std::string display_path() const { return base::Escaped(path()); }
  // The open file's identity (fstat), or nullopt for a file that is not on a
  // file system (in-memory test files).
  virtual std::optional<FileId> id() const { return std::nullopt; }
  virtual IoEngine engine() const = 0;
};

// Opens path. A missing file (without create) is kNotFound naming the path. If
// the io_uring engine is asked for and the kernel refuses a ring, the result
// is kUnavailable saying so: there is no silent fallback to the sync engine.
base::Result<std::unique_ptr<BlockFile>> OpenBlockFile(const std::string& path,
                                                       const OpenOptions& options);

std::string_view ToString(IoEngine engine);

}  // namespace storage
