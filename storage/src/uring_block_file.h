// The io_uring engine: each request is split into chunks of at most
// max_chunk bytes, up to queue_depth chunks are in flight at once, and the
// batch returns when every chunk has completed. Short completions are
// resubmitted for the remainder; -EINTR, -EAGAIN and -ECANCELED completions
// are retried a bounded number of times.
#pragma once

#include <liburing.h>

#include <functional>
#include <optional>

#include "block_file_base.h"

namespace storage {

class UringBlockFile final : public BlockFileBase {
 public:
  // kUnavailable if the kernel refuses a ring (io_uring disabled, seccomp,
  // too old). Takes ownership of fd.
  static base::Result<std::unique_ptr<UringBlockFile>> Create(base::Fd fd, std::string path,
                                                              const OpenOptions& options);
  ~UringBlockFile() override;
  UringBlockFile(const UringBlockFile&) = delete;
  UringBlockFile& operator=(const UringBlockFile&) = delete;

  base::Result<std::vector<size_t>> SubmitBatch(std::span<const IoRequest> requests) override;
  base::Status Flush() override;
  IoEngine engine() const override { return IoEngine::kIoUring; }

  // Test seam: sees every completion's result and returns the one the engine
  // acts on, so tests can fake short completions, -EINTR and -ECANCELED
  // (which a healthy kernel rarely produces on demand).
  using CompletionFilter = std::function<int(int result)>;
  void SetCompletionFilterForTesting(CompletionFilter filter) { filter_ = std::move(filter); }

  // Consecutive interrupted/cancelled completions of one chunk before giving up.
  static constexpr int kMaxRetries = 16;

 private:
  struct Chunk;
  UringBlockFile(base::Fd fd, std::string path, const OpenOptions& options)
      : BlockFileBase(std::move(fd), std::move(path), options) {}

  // Submits what is queued and waits for at least one completion.
  base::Status SubmitAndWait();
  // Once set, the ring may hold requests that reference freed buffers, so
  // every later call fails with this error instead of touching the ring.
  base::Status Broken() const;

  io_uring ring_{};
  bool ring_ready_ = false;
  std::optional<base::Error> broken_;
  CompletionFilter filter_;
};

}  // namespace storage
