// CopySparseFile: copies a file that does not change during the copy (a
// read-only checkpoint layer) once, keeping it sparse: only the data runs the
// source reports (SEEK_DATA/SEEK_HOLE) are read, and 4 KiB blocks of zeros in
// them are not written, so holes stay holes (like cp --sparse=always).
//
// Durable and all-or-nothing: the copy goes to "<dst>.part", is fdatasync'd,
// renamed over dst, and the directory is synced. A crash leaves no dst or a
// complete one (and maybe a .part, which the next attempt overwrites).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "base/result.h"
#include "storage/block_file.h"

namespace storage {

struct SparseCopyOptions {
  // pread/pwrite by default: this is one sequential buffered stream, and
  // storage_bench measured the io_uring engine (one request in flight) at
  // 0.2-0.3x of cp here, while pread/pwrite matches cp.
  IoEngine engine = IoEngine::kSync;
  size_t buffer_size = 1 << 20;
  int cancel_fd = -1;  // polled between buffers: kCancelled (the .part is removed)
  // Called after every buffer with the bytes of the file done so far.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

struct SparseCopyStats {
  uint64_t size = 0;           // file size
  uint64_t data_bytes = 0;     // bytes written
  uint64_t skipped_bytes = 0;  // holes and zero blocks left as holes
};

base::Result<SparseCopyStats> CopySparseFile(const std::string& src, const std::string& dst,
                                             const SparseCopyOptions& options = {});

}  // namespace storage
