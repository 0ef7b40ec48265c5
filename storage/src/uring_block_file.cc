#include "uring_block_file.h"

#include <sys/mman.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>

namespace storage {

// One kernel request's worth of a caller's request.
struct UringBlockFile::Chunk {
  size_t request;  // index into the batch
  IoOp op;
  uint8_t* buf;
  size_t len;
  uint64_t offset;
  size_t done = 0;  // bytes completed so far
  int retries = 0;  // consecutive retryable failures
  int slot = -1;    // bounce buffer slot held, or -1
};

namespace {

bool Retryable(int res) { return res == -EINTR || res == -EAGAIN || res == -ECANCELED; }

}  // namespace

base::Result<std::unique_ptr<UringBlockFile>> UringBlockFile::Create(base::Fd fd, std::string path,
                                                                     const OpenOptions& options) {
  std::unique_ptr<UringBlockFile> file(new UringBlockFile(std::move(fd), std::move(path), options));
  int ret = io_uring_queue_init(options.queue_depth, &file->ring_, 0);
  if (ret < 0) {
    return base::Error(base::Code::kUnavailable,
                       "open " + file->display_path() + ": io_uring is unavailable on this host (" +
                           std::strerror(-ret) +
                           "); check /proc/sys/kernel/io_uring_disabled and seccomp, or use the "
                           "sync engine",
                       -ret);
  }
  file->ring_ready_ = true;
  file->RegisterResources();
  return file;
}

void UringBlockFile::RegisterResources() {
  const unsigned slots = std::min(options_.fixed_buffers, options_.queue_depth);
  if (slots > 0) {
    auto pool = base::Mapping::Map(size_t(slots) * options_.fixed_buffer_size,
                                   PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
    if (pool) {
      // A child process (ferryd spawns workers) has no use for the pool, and
      // without this the kernel copies pinned pages into it at fork.
      (void)madvise(pool->data(), pool->size(), MADV_DONTFORK);
      iovec iov{pool->data(), pool->size()};
      // ENOMEM here is RLIMIT_MEMLOCK for an unprivileged user; the plain
      // path is correct, only slower, so carry on without.
      if (io_uring_register_buffers(&ring_, &iov, 1) == 0) {
        pool_ = *std::move(pool);
        stats_.fixed_slots = slots;
      }
    }
  }
  int fd = fd_.get();
  stats_.fixed_file = io_uring_register_files(&ring_, &fd, 1) == 0;
}

UringBlockFile::~UringBlockFile() {
  // No request is ever left in flight when a call returns, so tearing the
  // ring down cannot race the kernel writing into a caller's buffer.
  if (!ring_ready_) return;
  // The ring is torn down asynchronously after io_uring_queue_exit, and a
  // registered file stays open until then: unregister it first so the file
  // is closed when this returns (a volume can then be unmounted at once).
  if (stats_.fixed_file) (void)io_uring_unregister_files(&ring_);
  if (stats_.fixed_slots > 0) (void)io_uring_unregister_buffers(&ring_);
  io_uring_queue_exit(&ring_);
}

base::Status UringBlockFile::Broken() const {
  if (broken_) return *broken_;
  return base::Ok();
}

base::Status UringBlockFile::SubmitAndWait() {
  for (;;) {
    int ret = io_uring_submit_and_wait(&ring_, 1);
    if (ret >= 0) return base::Ok();
    if (ret == -EINTR) continue;  // a signal; what was queued is still queued
    broken_ = base::ErrnoError("io_uring_enter for " + display_path(), -ret);
    return *broken_;
  }
}

base::Result<std::vector<size_t>> UringBlockFile::SubmitBatch(std::span<const IoRequest> requests) {
  RETURN_IF_ERROR(Broken());
  RETURN_IF_ERROR(CheckRequests(requests));

  std::vector<Chunk> chunks;
  for (size_t i = 0; i < requests.size(); ++i) {
    const IoRequest& r = requests[i];
    for (size_t at = 0; at < r.len; at += options_.max_chunk) {
      chunks.push_back(Chunk{i, r.op, static_cast<uint8_t*>(r.buf) + at,
                             std::min(options_.max_chunk, r.len - at), r.offset + at});
    }
  }
  std::deque<size_t> ready;  // chunk indices waiting for a ring slot
  for (size_t i = 0; i < chunks.size(); ++i) ready.push_back(i);
  // Bounce buffer slots not held by a chunk. Every slot is free between
  // batches: a batch returns only when nothing is in flight.
  std::vector<int> free_slots;
  for (unsigned i = stats_.fixed_slots; i > 0; --i) free_slots.push_back(int(i - 1));
  // A chunk is finished (not resubmitted): a read's bytes leave its slot.
  auto finish = [&](Chunk& c) {
    if (c.slot < 0) return;
    if (c.op == IoOp::kRead && c.done > 0) std::memcpy(c.buf, Slot(c.slot), c.done);
    free_slots.push_back(c.slot);
    c.slot = -1;
  };

  std::optional<base::Error> failure;
  unsigned in_flight = 0;
  while (in_flight > 0 || (!failure && !ready.empty())) {
    // After a failure nothing new is submitted, but what is in flight must
    // complete before the caller may reuse its buffers.
    while (!failure && !ready.empty() && in_flight < options_.queue_depth) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
      if (sqe == nullptr) break;  // ring full; reap first
      Chunk& c = chunks[ready.front()];
      auto remaining = static_cast<unsigned>(c.len - c.done);
      if (c.slot < 0 && c.done == 0 && c.len <= options_.fixed_buffer_size && !free_slots.empty()) {
        c.slot = free_slots.back();
        free_slots.pop_back();
        if (c.op == IoOp::kWrite) std::memcpy(Slot(c.slot), c.buf, c.len);
      }
      const uint64_t at = c.offset + c.done;
      if (c.slot >= 0) {
        uint8_t* p = Slot(c.slot) + c.done;
        if (c.op == IoOp::kRead) {
          io_uring_prep_read_fixed(sqe, FileArg(), p, remaining, at, 0);
        } else {
          io_uring_prep_write_fixed(sqe, FileArg(), p, remaining, at, 0);
        }
        ++stats_.fixed_submissions;
      } else {
        if (c.op == IoOp::kRead) {
          io_uring_prep_read(sqe, FileArg(), c.buf + c.done, remaining, at);
        } else {
          io_uring_prep_write(sqe, FileArg(), c.buf + c.done, remaining, at);
        }
        ++stats_.plain_submissions;
      }
      SetFileFlag(sqe);
      io_uring_sqe_set_data64(sqe, ready.front());
      ready.pop_front();
      ++in_flight;
    }
    RETURN_IF_ERROR(SubmitAndWait());

    io_uring_cqe* cqe;
    while (io_uring_peek_cqe(&ring_, &cqe) == 0) {
      size_t index = io_uring_cqe_get_data64(cqe);
      int res = filter_ ? filter_(cqe->res) : cqe->res;
      io_uring_cqe_seen(&ring_, cqe);
      --in_flight;
      Chunk& c = chunks[index];
      uint64_t at = c.offset + c.done;
      if (res < 0) {
        if (Retryable(res) && ++c.retries <= kMaxRetries) {
          ready.push_front(index);
          continue;
        }
        if (!failure) failure = base::ErrnoError(Describe(c.op, at, c.len - c.done), -res);
        finish(c);
        continue;
      }
      c.retries = 0;
      if (res == 0) {
        // A read that returns nothing is at end of file: the chunk stays
        // short and ends its request's result.
        if (c.op == IoOp::kWrite && !failure) {
          failure = base::Error(base::Code::kDataLoss,
                                Describe(c.op, at, c.len - c.done) + ": wrote nothing");
        }
        finish(c);
        continue;
      }
      c.done += static_cast<size_t>(res);
      // Short completion: the rest goes again, unless it was an O_DIRECT
      // read that stopped at an unaligned end of file.
      if (c.done < c.len && (c.op == IoOp::kWrite || !UnalignedEnd(c.offset + c.done))) {
        ready.push_front(index);
      } else {
        finish(c);
      }
    }
  }
  if (failure) return *failure;

  // A read's result is its contiguous prefix: chunks after the one that met
  // end of file can only have read nothing.
  std::vector<size_t> done(requests.size(), 0);
  std::vector<bool> stopped(requests.size(), false);
  for (const Chunk& c : chunks) {
    if (stopped[c.request]) continue;
    done[c.request] += c.done;
    if (c.done < c.len) stopped[c.request] = true;
  }
  return done;
}

base::Status UringBlockFile::Flush() {
  RETURN_IF_ERROR(Broken());
  for (int attempt = 0;; ++attempt) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      return base::Error(base::Code::kInternal,
                         "fdatasync " + display_path() + ": io_uring queue is full");
    }
    io_uring_prep_fsync(sqe, FileArg(), IORING_FSYNC_DATASYNC);
    SetFileFlag(sqe);
    RETURN_IF_ERROR(SubmitAndWait());
    // io_uring_enter reports the SQEs it submitted even when a signal cut
    // its wait short (a vCPU kick, for one), so the completion may not be
    // there yet: wait for it, rather than peek.
    io_uring_cqe* cqe;
    int ret;
    while ((ret = io_uring_wait_cqe(&ring_, &cqe)) == -EINTR) {
    }
    if (ret != 0) {
      broken_ = base::ErrnoError("fdatasync " + display_path() + ": no completion", -ret);
      return *broken_;
    }
    int res = filter_ ? filter_(cqe->res) : cqe->res;
    io_uring_cqe_seen(&ring_, cqe);
    if (res >= 0) return base::Ok();
    if (!Retryable(res) || attempt >= kMaxRetries)
      return base::ErrnoError("fdatasync " + display_path(), -res);
  }
}

}  // namespace storage
