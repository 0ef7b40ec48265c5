// FileSink: a raw image file as the destination of a copy.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <deque>
#include <vector>

#include "base/fd.h"
#include "base/mutex.h"
#include "storage/block_sink.h"

namespace storage {
namespace {

class FileSink final : public BlockSink {
 public:
  FileSink(base::Fd fd, std::string path, uint64_t size, bool fresh)
      : fd_(std::move(fd)), path_(std::move(path)), size_(size), fresh_(fresh) {}

  uint64_t size() const override { return size_; }
  bool reads_zero_initially() const override { return fresh_; }
  const std::string& name() const override { return path_; }

  base::Status WriteExtent(uint64_t offset, std::span<const uint8_t> data) override {
    RETURN_IF_ERROR(CheckRange("write", offset, data.size()));
    base::Status st = base::PwriteAll(fd_.get(), data.data(), data.size(), off_t(offset));
    if (!st) return st.error().Wrap(Describe("write", offset, data.size()));
    if (data.size() >= kStreamMin) Stream(offset, data.size());
    return base::Ok();
  }

  base::Status WriteZeroes(uint64_t offset, uint64_t len) override {
    RETURN_IF_ERROR(CheckRange("zero", offset, len));
    if (len == 0) return base::Ok();
    if (!punch_unsupported_.load(std::memory_order_relaxed)) {
      if (fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t(offset),
                    off_t(len)) == 0) {
        return base::Ok();
      }
      if (errno != EOPNOTSUPP && errno != ENOSYS) {
        return base::ErrnoError(Describe("punch hole in", offset, len));
      }
      punch_unsupported_.store(true, std::memory_order_relaxed);
    }
    // No hole punching here (some file systems): write zeros instead.
    static const std::vector<uint8_t> zeros(1 << 20, 0);
    for (uint64_t done = 0; done < len;) {
      size_t n = size_t(std::min<uint64_t>(zeros.size(), len - done));
      base::Status st = base::PwriteAll(fd_.get(), zeros.data(), n, off_t(offset + done));
      if (!st) return st.error().Wrap(Describe("zero", offset + done, n));
      done += n;
    }
    return base::Ok();
  }

  base::Status Flush() override {
    if (fdatasync(fd_.get()) != 0) return base::ErrnoError("flush " + path_);
    return base::Ok();
  }

  base::Status Finish() override {
    RETURN_IF_ERROR(Flush());
    return base::SyncParentDirectory(path_);
  }

  void Abort() override {}

 private:
  // Bulk writes (the copier's chunks) start writeback at once and wait for
  // the writeback of what was written kStreamWindow bytes earlier, so the
  // copy never leaves a large backlog of dirty pages: a guest flush on the
  // same device then waits behind a few MiB of copy I/O, not hundreds, and
  // the periodic Flush has little left to do. Best effort: errors surface
  // from Flush (fdatasync) like any writeback error.
  static constexpr size_t kStreamMin = 256 << 10;
  static constexpr uint64_t kStreamWindow = 16 << 20;
  void Stream(uint64_t offset, uint64_t len) {
    (void)sync_file_range(fd_.get(), off_t(offset), off_t(len), SYNC_FILE_RANGE_WRITE);
    base::MutexLock lock(stream_mu_);
    streamed_.push_back({offset, len});
    streamed_bytes_ += len;
    while (streamed_bytes_ > kStreamWindow) {
      auto [o, l] = streamed_.front();
      streamed_.pop_front();
      streamed_bytes_ -= l;
      (void)sync_file_range(
          fd_.get(), off_t(o), off_t(l),
          SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
    }
  }

  base::Status CheckRange(const char* op, uint64_t offset, uint64_t len) const {
    if (offset > size_ || len > size_ - offset) {
      return base::Error(base::Code::kOutOfRange, Describe(op, offset, len) +
                                                      ": beyond the end of the destination (" +
                                                      std::to_string(size_) + " bytes)");
    }
    return base::Ok();
  }
  std::string Describe(const char* op, uint64_t offset, uint64_t len) const {
    return std::string(op) + " " + path_ + " at offset " + std::to_string(offset) + " (" +
           std::to_string(len) + " bytes)";
  }

  base::Fd fd_;
  std::string path_;
  uint64_t size_;
  bool fresh_;
  std::atomic<bool> punch_unsupported_{false};
  base::Mutex stream_mu_;
  std::deque<std::pair<uint64_t, uint64_t>> streamed_ GUARDED_BY(stream_mu_);
  uint64_t streamed_bytes_ GUARDED_BY(stream_mu_) = 0;
};

}  // namespace

base::Result<std::unique_ptr<BlockSink>> OpenFileSink(const std::string& path, uint64_t size,
                                                      const FileSinkOptions& options) {
  int flags = O_RDWR | (options.create ? O_CREAT : 0);
  ASSIGN_OR_RETURN(base::Fd fd, base::Fd::Open(path, flags, 0644));
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return base::ErrnoError("stat " + path);
  if (uint64_t(st.st_size) != size && ftruncate(fd.get(), off_t(size)) != 0) {
    return base::ErrnoError("resize " + path + " to " + std::to_string(size) + " bytes");
  }
  return std::unique_ptr<BlockSink>(
      std::make_unique<FileSink>(std::move(fd), path, size, options.fresh));
}

}  // namespace storage
