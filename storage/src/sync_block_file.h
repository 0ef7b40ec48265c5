// The pread/pwrite engine: one system call at a time, in request order. It is
// the reference the io_uring engine is tested against, and the engine for
// callers that cannot use io_uring.
#pragma once

#include <memory>

#include "block_file_base.h"

namespace storage {

class SyncBlockFile final : public BlockFileBase {
 public:
  SyncBlockFile(base::Fd fd, std::string path, const OpenOptions& options)
      : BlockFileBase(std::move(fd), std::move(path), options) {}

  base::Result<std::vector<size_t>> SubmitBatch(std::span<const IoRequest> requests) override;
  base::Status Flush() override;
  IoEngine engine() const override { return IoEngine::kSync; }

 private:
  base::Result<size_t> Read(const IoRequest& r);
  base::Status Write(const IoRequest& r);
};

}  // namespace storage
