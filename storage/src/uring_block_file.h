// The io_uring engine: each request is split into chunks of at most
// max_chunk bytes, up to queue_depth chunks are in flight at once, and the
// batch returns when every chunk has completed. Short completions are
// resubmitted for the remainder; -EINTR, -EAGAIN and -ECANCELED completions
// are retried a bounded number of times.
//
// Registered resources (OpenOptions::fixed_buffers): one anonymous mapping,
// cut into slots of fixed_buffer_size bytes, is registered with the ring as
// fixed buffer 0, and the file as fixed file 0. A chunk no larger than a slot
// takes a free slot for its life (including resubmissions of a short
// completion): a write copies the caller's bytes in before the first
// WRITE_FIXED, a read copies out after its last READ_FIXED. Chunks that do not
// fit, or find every slot taken, use the caller's buffer as before. Results
// are the same either way; stats() says which path ran.
#pragma once

#include <liburing.h>

#include <functional>
#include <optional>

#include "base/mapping.h"
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

  // Submissions since open, by path (a resubmitted short completion counts
  // again), and what the kernel accepted at open.
  struct Stats {
    uint64_t fixed_submissions = 0;  // READ_FIXED / WRITE_FIXED through a slot
    uint64_t plain_submissions = 0;  // READ / WRITE on the caller's buffer
    unsigned fixed_slots = 0;        // 0: no registered buffers
    bool fixed_file = false;         // the fd is registered
  };
  const Stats& stats() const { return stats_; }

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
  // Registers the bounce buffer pool and the file; failures only leave the
  // engine without them.
  void RegisterResources();
  uint8_t* Slot(int slot) const { return pool_.data() + size_t(slot) * options_.fixed_buffer_size; }
  // The fd argument of a request and the flag that goes with it.
  int FileArg() const { return stats_.fixed_file ? 0 : fd_.get(); }
  void SetFileFlag(io_uring_sqe* sqe) const {
    if (stats_.fixed_file) sqe->flags |= IOSQE_FIXED_FILE;
  }

  // The bounce buffers. Destroyed after the destructor has torn the ring down
  // (which unregisters them); the kernel holds its own page references while
  // they are registered, so order only matters for tidiness.
  base::Mapping pool_;
  io_uring ring_{};
  bool ring_ready_ = false;
  std::optional<base::Error> broken_;
  CompletionFilter filter_;
  Stats stats_;
};

}  // namespace storage
