#include "storage/tracking_disk.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

namespace storage {

base::Result<std::unique_ptr<TrackingDisk>> TrackingDisk::Create(std::unique_ptr<Disk> inner,
                                                                 uint64_t granularity) {
  ASSIGN_OR_RETURN(DirtyBitmap dirty, DirtyBitmap::Create(inner->size(), granularity));
  ASSIGN_OR_RETURN(DirtyBitmap unsynced, DirtyBitmap::Create(inner->size(), granularity));
  return std::unique_ptr<TrackingDisk>(
      new TrackingDisk(std::move(inner), std::move(dirty), std::move(unsynced)));
}

TrackingDisk::TrackingDisk(std::unique_ptr<Disk> inner, DirtyBitmap dirty, DirtyBitmap unsynced)
    : size_(inner->size()),
      read_only_(inner->read_only()),
      dirty_(std::move(dirty)),
      inner_(std::move(inner)),
      unsynced_(std::move(unsynced)) {}

TrackingDisk::~TrackingDisk() = default;

namespace {

uint64_t NowNs() {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count());
}

}  // namespace

uint64_t TrackingDisk::BeginGuestOp() {
  while (paused_) cv_.Wait(mu_);
  ++guest_ops_;
  return NowNs();
}

void TrackingDisk::EndGuestOp(uint64_t begin_ns) {
  --guest_ops_;
  ++guest_done_;
  guest_busy_ns_ += NowNs() - begin_ns;
  cv_.NotifyAll();
}

GuestIoStats TrackingDisk::guest_io_stats() const {
  base::MutexLock lock(mu_);
  return GuestIoStats{guest_done_, guest_busy_ns_, guest_ops_};
}

void TrackingDisk::Wake() const {
  if (wake_fd_ < 0) return;
  // An eventfd write only fails if the counter would overflow, and then the
  // copier is due to wake anyway.
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
}

base::Status TrackingDisk::Read(void* buf, size_t len, uint64_t offset) {
  base::MutexLock lock(mu_);
  const uint64_t begin_ns = BeginGuestOp();
  lock.Unlock();
  base::Status st = [&] {
    base::MutexLock io(io_mu_);
    return inner_->Read(buf, len, offset);
  }();
  lock.Lock();
  EndGuestOp(begin_ns);
  return st;
}

TrackingDisk::WriteKind TrackingDisk::ClassifyWrite(uint64_t offset, uint64_t end) const {
  if (sink_ == nullptr || mirror_error_) return WriteKind::kSourceOnly;
  // Every block dirty: the copier will copy them after this write has landed
  // (it sets the bits again afterwards), so the sink need not see it now.
  if (dirty_.TestAll(offset, end - offset)) return WriteKind::kSourceOnly;
  if (copying_ && copying_->Overlaps(offset, end)) return WriteKind::kSourceOnly;
  for (const Range& r : write_through_) {
    if (r.Overlaps(offset, end)) return WriteKind::kSourceOnly;
  }
  return WriteKind::kWriteThrough;
}

base::Status TrackingDisk::Write(const void* buf, size_t len, uint64_t offset) {
  return GuestWrite(
      "mirror guest write", offset, len, [&](Disk& d) { return d.Write(buf, len, offset); },
      [&](BlockSink& sink) {
        return sink.WriteExtent(offset,
                                std::span<const uint8_t>(static_cast<const uint8_t*>(buf), len));
      });
}

// A discarded range reads as zeros (Disk's contract), so the sink gets zeros.
base::Status TrackingDisk::Discard(uint64_t offset, uint64_t len) {
  return GuestWrite(
      "mirror guest discard", offset, len, [&](Disk& d) { return d.Discard(offset, len); },
      [&](BlockSink& sink) { return sink.WriteZeroes(offset, len); });
}

base::Status TrackingDisk::WriteZeroes(uint64_t offset, uint64_t len) {
  return GuestWrite(
      "mirror guest write-zeroes", offset, len, [&](Disk& d) { return d.WriteZeroes(offset, len); },
      [&](BlockSink& sink) { return sink.WriteZeroes(offset, len); });
}

template <typename SourceOp, typename SinkOp>
base::Status TrackingDisk::GuestWrite(const char* what, uint64_t offset, uint64_t len,
                                      SourceOp source_op, SinkOp sink_op) {
  if (read_only_) {
    base::MutexLock io(io_mu_);
    return source_op(*inner_);  // the inner disk words the refusal
  }
  const uint64_t end = offset + len;
  base::MutexLock lock(mu_);
  const uint64_t begin_ns = BeginGuestOp();
  const WriteKind kind = len == 0 ? WriteKind::kSourceOnly : ClassifyWrite(offset, end);
  BlockSink* sink = sink_;
  if (kind == WriteKind::kWriteThrough) write_through_.push_back({offset, end});
  lock.Unlock();

  base::Status st = [&] {
    base::MutexLock io(io_mu_);
    return source_op(*inner_);
  }();
  bool dirtied = false;
  std::optional<base::Error> sink_error;
  if (!st || kind == WriteKind::kSourceOnly) {
    // After the source write (see the header): a copier that read the old
    // bytes copies again. A failed source write may have landed in part.
    dirtied = dirty_.Set(offset, len) != 0;
  } else {
    base::Status sst = sink_op(*sink);
    if (!sst) {
      dirtied = dirty_.Set(offset, len) != 0;
      sink_error = sst.error().Wrap(what);
    }
  }

  lock.Lock();
  if (kind == WriteKind::kWriteThrough) {
    auto it = std::find_if(write_through_.begin(), write_through_.end(),
                           [&](const Range& r) { return r.offset == offset && r.end == end; });
    write_through_.erase(it);
    if (st && !sink_error) unsynced_.Set(offset, len);
    if (sink_error && !mirror_error_) mirror_error_ = std::move(sink_error);
  }
  if (dirtied && sink_ != nullptr) Wake();
  EndGuestOp(begin_ns);
  return st;
}

base::Status TrackingDisk::Flush() {
  base::MutexLock lock(mu_);
  const uint64_t begin_ns = BeginGuestOp();
  ++guest_flushes_;
  lock.Unlock();
  base::Status st = [&] {
    base::MutexLock io(io_mu_);
    return inner_->Flush();
  }();
  lock.Lock();
  --guest_flushes_;
  EndGuestOp(begin_ns);
  return st;
}

void TrackingDisk::YieldToGuestFlush(int max_wait_ms) {
  base::MutexLock lock(mu_);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(max_wait_ms);
  while (guest_flushes_ != 0 && cv_.WaitUntil(mu_, deadline)) {
  }
}

base::Result<Extent> TrackingDisk::MapExtent(uint64_t offset, uint64_t max_len) {
  base::MutexLock io(io_mu_);
  return inner_->MapExtent(offset, max_len);
}

void TrackingDisk::PauseIo() {
  base::MutexLock lock(mu_);
  paused_ = true;
  while (guest_ops_ != 0) cv_.Wait(mu_);
}

void TrackingDisk::ResumeIo() {
  base::MutexLock lock(mu_);
  paused_ = false;
  cv_.NotifyAll();
}

bool TrackingDisk::io_paused() const {
  base::MutexLock lock(mu_);
  return paused_;
}

base::Result<std::unique_ptr<Disk>> TrackingDisk::SwitchTo(std::unique_ptr<Disk> next) {
  base::MutexLock lock(mu_);
  if (!paused_ || sink_ != nullptr) {
    return base::Error(base::Code::kFailedPrecondition,
                       "switch disk: guest I/O must be paused and no mirror attached");
  }
  if (next->size() != size_ || next->read_only() != read_only_) {
    return base::Error(base::Code::kInvalidArgument,
                       "switch disk: the new disk has " + std::to_string(next->size()) + " bytes" +
                           (next->read_only() ? " (read-only)" : "") + ", the running one " +
                           std::to_string(size_) + (read_only_ ? " (read-only)" : ""));
  }
  base::MutexLock io(io_mu_);
  std::swap(inner_, next);
  return next;
}

base::Status TrackingDisk::AttachMirror(BlockSink& sink, int wake_fd) {
  base::MutexLock lock(mu_);
  if (sink_ != nullptr) {
    return base::Error(base::Code::kFailedPrecondition,
                       "attach mirror to " + sink.name() + ": another mirror is attached");
  }
  if (sink.size() != size_) {
    return base::Error(base::Code::kInvalidArgument, "attach mirror: destination " + sink.name() +
                                                         " has " + std::to_string(sink.size()) +
                                                         " bytes, the disk " +
                                                         std::to_string(size_));
  }
  sink_ = &sink;
  wake_fd_ = wake_fd;
  mirror_error_.reset();
  return base::Ok();
}

void TrackingDisk::DetachMirror() {
  base::MutexLock lock(mu_);
  sink_ = nullptr;  // new writes are source-only from here
  wake_fd_ = -1;
  while (!write_through_.empty()) cv_.Wait(mu_);
}

std::optional<base::Error> TrackingDisk::mirror_error() const {
  base::MutexLock lock(mu_);
  return mirror_error_;
}

base::Status TrackingDisk::BeginCopy(uint64_t offset, uint64_t len, int cancel_fd) {
  base::MutexLock lock(mu_);
  const uint64_t end = offset + len;
  copying_ = Range{offset, end};
  auto overlaps = [&](const Range& r) { return r.Overlaps(offset, end); };
  // Write-throughs take microseconds; the timed wait only exists so a sink
  // that hangs (a remote peer) cannot make cancellation hang with it.
  for (;;) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(20);
    while (std::any_of(write_through_.begin(), write_through_.end(), overlaps) &&
           cv_.WaitUntil(mu_, deadline)) {
    }
    if (std::none_of(write_through_.begin(), write_through_.end(), overlaps)) break;
    pollfd p{cancel_fd, POLLIN, 0};
    if (cancel_fd >= 0 && poll(&p, 1, 0) > 0) {
      copying_.reset();
      return base::Error(base::Code::kCancelled, "mirror copy cancelled");
    }
  }
  return base::Ok();
}

void TrackingDisk::EndCopy() {
  base::MutexLock lock(mu_);
  copying_.reset();
}

base::Status TrackingDisk::ReadForCopy(void* buf, size_t len, uint64_t offset) {
  base::MutexLock io(io_mu_);
  return inner_->Read(buf, len, offset);
}

base::Result<Extent> TrackingDisk::MapExtentForCopy(uint64_t offset, uint64_t max_len) {
  base::MutexLock io(io_mu_);
  return inner_->MapExtent(offset, max_len);
}

void TrackingDisk::MarkUnsynced(uint64_t offset, uint64_t len) {
  base::MutexLock lock(mu_);
  unsynced_.Set(offset, len);
}

DirtyBitmap TrackingDisk::SwapUnsynced() {
  // Allocated outside mu_: a large disk's bitmap takes a moment to zero.
  DirtyBitmap fresh = *DirtyBitmap::Create(size_, dirty_.granularity());
  base::MutexLock lock(mu_);
  std::swap(fresh, unsynced_);
  return fresh;
}

DirtyBitmap TrackingDisk::ResumeBitmap() const {
  DirtyBitmap out = dirty_.Clone();
  base::MutexLock lock(mu_);
  (void)out.Merge(unsynced_);  // same geometry by construction
  return out;
}

}  // namespace storage
