#include "storage/mirror_job.h"

#include <poll.h>

#include <algorithm>
#include <cstring>

#include "base/log.h"

namespace storage {
namespace {

// Zero detection works on 4 KiB pieces, the block size of every file system
// we copy to, so a hole in the source stays a hole in the copy.
constexpr size_t kZeroPiece = 4096;
constexpr int kIdleWaitMs = 100;
// Longest the copier defers a chunk to a guest flush in flight: at least one
// chunk per this many milliseconds, so the copy converges however often the
// guest flushes.
constexpr int kFlushYieldMs = 50;

bool IsZero(const uint8_t* p, size_t n) {
  return n == 0 || (p[0] == 0 && std::memcmp(p, p + 1, n - 1) == 0);
}

bool Terminal(MirrorState s) {
  return s == MirrorState::kConverged || s == MirrorState::kFailed || s == MirrorState::kCancelled;
}

}  // namespace

GuestFirstPacer::GuestFirstPacer(uint64_t floor_bps, uint64_t cap_bps)
    : floor_(cap_bps != 0 ? std::min(floor_bps, cap_bps) : floor_bps),
      cap_(cap_bps != 0 ? cap_bps : kUnlimited),
      rate_(floor_) {}

uint64_t GuestFirstPacer::Update(uint64_t ops, uint64_t in_flight) {
  rate_ = ops == 0 && in_flight == 0 ? cap_ : floor_;
  return rate_;
}

std::string_view ToString(MirrorState state) {
  switch (state) {
    case MirrorState::kCopying: return "copying";
    case MirrorState::kReady: return "ready";
    case MirrorState::kCompleting: return "completing";
    case MirrorState::kConverged: return "converged";
    case MirrorState::kFailed: return "failed";
    case MirrorState::kCancelled: return "cancelled";
  }
  return "unknown";
}

base::Result<std::unique_ptr<MirrorJob>> MirrorJob::Start(TrackingDisk& source, BlockSink& sink,
                                                          MirrorOptions options) {
  const uint64_t gran = source.dirty().granularity();
  if (options.chunk_size == 0 || options.chunk_size % gran != 0 || options.chunk_size > 64 << 20) {
    return base::Error(base::Code::kInvalidArgument,
                       "mirror chunk size " + std::to_string(options.chunk_size) +
                           " is not a multiple of the bitmap granularity " + std::to_string(gran) +
                           " up to 64 MiB");
  }
  if (options.guest_first && options.min_bytes_per_second == 0) {
    return base::Error(base::Code::kInvalidArgument,
                       "guest-first mirror needs a floor rate (min_bytes_per_second > 0)");
  }
  if (sink.size() != source.size()) {
    return base::Error(base::Code::kInvalidArgument,
                       "mirror to " + sink.name() + ": destination has " +
                           std::to_string(sink.size()) + " bytes, the source " +
                           std::to_string(source.size()));
  }
  if (options.resume != nullptr) {
    base::Status st = source.dirty().Merge(*options.resume);
    if (!st) return st.error().Wrap("resume mirror to " + sink.name());
    options.resume = nullptr;  // borrowed for Start only
  }
  ASSIGN_OR_RETURN(base::EventFd cancel, base::EventFd::Create());
  ASSIGN_OR_RETURN(base::EventFd wake, base::EventFd::Create());
  ASSIGN_OR_RETURN(base::EventFd ready, base::EventFd::Create());
  ASSIGN_OR_RETURN(base::EventFd done, base::EventFd::Create());
  std::unique_ptr<MirrorJob> job(new MirrorJob(source, sink, std::move(options), std::move(cancel),
                                               std::move(wake), std::move(ready), std::move(done)));
  job->thread_ = std::thread([raw = job.get()] { raw->Run(); });
  return job;
}

MirrorJob::MirrorJob(TrackingDisk& source, BlockSink& sink, MirrorOptions options,
                     base::EventFd cancel, base::EventFd wake, base::EventFd ready,
                     base::EventFd done)
    : source_(source),
      sink_(sink),
      options_(std::move(options)),
      clock_(options_.clock != nullptr ? *options_.clock : monotonic_),
      cancel_(std::move(cancel)),
      wake_(std::move(wake)),
      ready_(std::move(ready)),
      done_(std::move(done)),
      buf_(options_.chunk_size) {
  unscanned_ = options_.start == MirrorStart::kFullScan ? source.size() : 0;
  rate_mark_ns_ = clock_.NowNanos();
  if (options_.guest_first) {
    pacer_.emplace(options_.min_bytes_per_second, options_.max_bytes_per_second);
  }
}

MirrorJob::~MirrorJob() {
  Cancel();
  // The job's outcome was for whoever waited earlier; here only the join matters.
  (void)Wait();
}

// An eventfd write fails only when its counter would overflow, which leaves
// it readable: the cancel is seen either way.
void MirrorJob::Cancel() { (void)cancel_.Signal(); }

base::Status MirrorJob::Wait() {
  {
    base::MutexLock join(join_mu_);
    if (thread_.joinable()) thread_.join();
  }
  base::MutexLock lock(mu_);
  return FinalStatus();
}

base::Status MirrorJob::FinalStatus() const {
  if (state_ == MirrorState::kConverged) return base::Ok();
  if (error_) return *error_;
  return base::Error(base::Code::kFailedPrecondition,
                     std::string("mirror job is ") + std::string(ToString(state_)));
}

base::Status MirrorJob::CheckCancelled() const {
  pollfd p{cancel_.fd(), POLLIN, 0};
  if (poll(&p, 1, 0) > 0) {
    return base::Error(base::Code::kCancelled, "mirror to " + sink_.name() + " cancelled");
  }
  return base::Ok();
}

void MirrorJob::SetState(MirrorState state) {
  base::MutexLock lock(mu_);
  if (Terminal(state_)) return;
  // Complete() may have moved us to kCompleting already; the copy loop's
  // "ready" must not undo that.
  if (state == MirrorState::kReady && state_ == MirrorState::kCompleting) return;
  state_ = state;
  // Cannot fail while readable (see Cancel); a waiter sees it either way.
  if (state == MirrorState::kReady || Terminal(state)) (void)ready_.Signal();
  cv_.NotifyAll();
}

void MirrorJob::AddCopied(uint64_t bytes) {
  base::MutexLock lock(mu_);
  copied_ += bytes;
  // Rate over windows of at least half a second, smoothed so the ETA does not
  // jump with every chunk.
  const uint64_t now = clock_.NowNanos();
  const uint64_t elapsed = now - rate_mark_ns_;
  if (elapsed >= 500'000'000) {
    double inst = double(copied_ - rate_mark_bytes_) / (double(elapsed) / 1e9);
    rate_ = rate_ == 0 ? inst : 0.7 * rate_ + 0.3 * inst;
    rate_mark_ns_ = now;
    rate_mark_bytes_ = copied_;
  }
}

MirrorProgress MirrorJob::Progress() const {
  MirrorProgress p;
  p.bytes_total = source_.size();
  p.bytes_remaining = source_.dirty().dirty_bytes();
  base::MutexLock lock(mu_);
  p.state = state_;
  p.bytes_copied = copied_;
  p.bytes_remaining = std::min(p.bytes_total, p.bytes_remaining + unscanned_);
  p.bytes_per_second = rate_;
  if (rate_ > 0) p.eta_seconds = double(p.bytes_remaining) / rate_;
  if (p.bytes_remaining == 0) p.eta_seconds = 0;
  return p;
}

base::Status MirrorJob::WaitReady(int cancel_fd, int timeout_ms) {
  auto readable = base::WaitReadable(ready_.fd(), cancel_fd, timeout_ms);
  if (!readable) return readable.error();
  base::MutexLock lock(mu_);
  if (Terminal(state_)) return FinalStatus();
  return base::Ok();
}

base::Status MirrorJob::Complete(int cancel_fd) {
  if (!source_.io_paused()) {
    return base::Error(base::Code::kFailedPrecondition,
                       "complete mirror to " + sink_.name() + ": guest I/O is not paused");
  }
  {
    base::MutexLock lock(mu_);
    if (Terminal(state_)) return FinalStatus();
    state_ = MirrorState::kCompleting;
  }
  complete_requested_ = true;
  (void)wake_.Signal();  // a failed wake-up leaves it readable (see Cancel)
  auto readable = base::WaitReadable(done_.fd(), cancel_fd, -1);
  if (!readable) return readable.error();
  base::MutexLock lock(mu_);
  return FinalStatus();
}

void MirrorJob::Run() {
  base::SetThreadName("mirror");
  base::Status st = RunCopy();
  // Whatever happened, no write-through may outlive the job.
  source_.DetachMirror();
  if (!st) {
    // Ranges the sink never confirmed durable count as not copied: a retry
    // copies them again rather than trusting a destination that failed.
    DirtyBitmap unconfirmed = source_.SwapUnsynced();
    // Both bitmaps come from the same tracking disk, so their sizes match:
    // Merge's only failure cannot happen here.
    (void)source_.dirty().Merge(unconfirmed);
    sink_.Abort();
    const bool cancelled = st.error().code() == base::Code::kCancelled;
    base::LogWarning("mirror to " + sink_.name() + (cancelled ? " cancelled: " : " failed: ") +
                     st.error().ToString() + "; " + std::to_string(source_.dirty().dirty_bytes()) +
                     " bytes left to copy");
    {
      base::MutexLock lock(mu_);
      error_ = st.error();
    }
    SetState(cancelled ? MirrorState::kCancelled : MirrorState::kFailed);
  } else {
    SetState(MirrorState::kConverged);
  }
  (void)done_.Signal();  // cannot fail while readable (see Cancel)
}

base::Status MirrorJob::RunCopy() {
  std::unique_ptr<Disk> reader;
  if (options_.open_source) {
    auto opened = options_.open_source();
    if (!opened) return opened.error().Wrap("open mirror source reader");
    reader = std::move(opened).value();
    if (reader->size() != source_.size()) {
      return base::Error(base::Code::kFailedPrecondition,
                         "mirror source reader has " + std::to_string(reader->size()) +
                             " bytes, the disk " + std::to_string(source_.size()));
    }
  }
  // The pacer's first window runs during the scan.
  pacer_window_ns_ = clock_.NowNanos();
  pacer_stats_ = source_.guest_io_stats();
  RETURN_IF_ERROR(Seed(reader.get()));
  RETURN_IF_ERROR(source_.AttachMirror(sink_, wake_.fd()));

  const uint64_t chunk = options_.chunk_size;
  uint64_t cursor = 0;
  for (;;) {
    RETURN_IF_ERROR(CheckCancelled());
    if (auto e = source_.mirror_error()) return *e;
    auto run = source_.dirty().NextDirty(cursor, chunk);
    if (!run && cursor != 0) run = source_.dirty().NextDirty(0, chunk);
    if (!run) {
      // Nothing dirty. With guest I/O paused (Complete), nothing can become
      // dirty any more: the sink equals the source.
      if (complete_requested_) break;
      SetState(MirrorState::kReady);
      if (since_flush_ > 0) RETURN_IF_ERROR(FlushSink());
      auto woke = base::WaitReadable(wake_.fd(), cancel_.fd(), kIdleWaitMs);
      if (!woke && woke.error().code() == base::Code::kCancelled) return CheckCancelled();
      (void)wake_.Consume();  // nothing to read is fine: the wake-up only ends the wait
      continue;
    }
    // Claim the whole aligned chunk holding the run: Take copies every dirty
    // block in it, so the claim and the copy cover the same region.
    const uint64_t start = run->offset / chunk * chunk;
    const uint64_t len = std::min(chunk, source_.size() - start);
    RETURN_IF_ERROR(CopyChunk(reader.get(), start, len));
    cursor = start + len;
    if (since_flush_ >= options_.flush_interval) RETURN_IF_ERROR(FlushSink());
  }
  RETURN_IF_ERROR(FlushSink());
  base::Status fin = sink_.Finish();
  if (!fin) return fin.error().Wrap("finish mirror destination");
  return base::Ok();
}

base::Status MirrorJob::Seed(Disk* reader) {
  if (options_.start == MirrorStart::kFromBitmap) return base::Ok();
  const uint64_t size = source_.size();
  const bool sink_zero = sink_.reads_zero_initially();
  uint64_t offset = 0;
  while (offset < size) {
    RETURN_IF_ERROR(CheckCancelled());
    auto ext = reader != nullptr ? reader->MapExtent(offset, size - offset)
                                 : source_.MapExtentForCopy(offset, size - offset);
    if (!ext) return ext.error().Wrap("map mirror source");
    if (ext->offset != offset || ext->length == 0 || ext->length > size - offset) {
      return base::Error(base::Code::kInternal,
                         "map mirror source at " + std::to_string(offset) +
                             ": the disk returned an empty or misplaced extent");
    }
    bool copy = true;
    if (ext->kind == ExtentKind::kZero) copy = !sink_zero;
    if (ext->kind == ExtentKind::kUnallocated) copy = !options_.skip_unallocated;
    if (copy) source_.dirty().Set(ext->offset, ext->length);
    offset += ext->length;
    base::MutexLock lock(mu_);
    unscanned_ = size - offset;
  }
  return base::Ok();
}

base::Status MirrorJob::CopyChunk(Disk* reader, uint64_t offset, uint64_t len) {
  source_.YieldToGuestFlush(kFlushYieldMs);
  RETURN_IF_ERROR(source_.BeginCopy(offset, len, cancel_.fd()));
  // Taken only now: no write-through is in flight here and new guest writes
  // are source-only, setting their bits again after they land.
  std::vector<ByteRun> runs = source_.dirty().Take(offset, len);
  base::Status st = base::Ok();
  for (const ByteRun& r : runs) {
    st = CopyRun(reader, r.offset, r.length);
    if (!st) break;
  }
  if (!st) {
    for (const ByteRun& r : runs) source_.dirty().Set(r.offset, r.length);
  }
  source_.EndCopy();
  if (!st) return st;
  // Pace only after EndCopy: while the chunk is claimed, guest writes into it
  // are source-only and dirty it again, so sleeping with the claim held would
  // make a busy guest re-dirty every chunk and the copy would never converge.
  uint64_t copied = 0;
  for (const ByteRun& r : runs) copied += r.length;
  return copied != 0 ? Pace(copied) : base::Ok();
}

base::Status MirrorJob::CopyRun(Disk* reader, uint64_t offset, uint64_t len) {
  RETURN_IF_ERROR(ReadSource(reader, buf_.data(), len, offset));
  // Split into zero and data pieces; each piece goes to the sink as one call.
  size_t pos = 0;
  while (pos < len) {
    const size_t first = std::min<size_t>(kZeroPiece, len - pos);
    const bool zero = IsZero(buf_.data() + pos, first);
    size_t end = pos + first;
    while (end < len) {
      const size_t n = std::min<size_t>(kZeroPiece, len - end);
      if (IsZero(buf_.data() + end, n) != zero) break;
      end += n;
    }
    base::Status st = zero ? sink_.WriteZeroes(offset + pos, end - pos)
                           : sink_.WriteExtent(offset + pos, std::span<const uint8_t>(
                                                                 buf_.data() + pos, end - pos));
    if (!st) return st.error().Wrap("mirror copy");
    pos = end;
  }
  source_.MarkUnsynced(offset, len);
  since_flush_ += len;
  AddCopied(len);
  return base::Ok();
}

uint64_t MirrorJob::PaceRate(uint64_t now_ns) {
  const uint64_t cap = options_.max_bytes_per_second != 0 ? options_.max_bytes_per_second
                                                          : GuestFirstPacer::kUnlimited;
  if (!pacer_) return cap;
  if (now_ns - pacer_window_ns_ >= GuestFirstPacer::kWindowNs) {
    const GuestIoStats now = source_.guest_io_stats();
    pacer_->Update(now.ops - pacer_stats_.ops, now.in_flight);
    pacer_stats_ = now;
    pacer_window_ns_ = now_ns;
  }
  return pacer_->rate();
}

base::Status MirrorJob::Pace(uint64_t bytes) {
  // With guest I/O paused (Complete) there is no guest to protect, and the
  // switch is waiting for this copy.
  if (complete_requested_) return base::Ok();
  // Credit for time already spent copying, so a paced copy runs at its rate
  // rather than rate minus copy time; small, so a rate change bites at once.
  constexpr uint64_t kSlackNs = 20'000'000;
  bool charged = false;
  for (;;) {
    const uint64_t now = clock_.NowNanos();
    const uint64_t rate = PaceRate(now);
    if (rate == GuestFirstPacer::kUnlimited) {
      pace_next_ns_ = now;
      return base::Ok();
    }
    if (!charged) {
      pace_next_ns_ = std::max(pace_next_ns_, now - std::min(now, kSlackNs)) +
                      uint64_t(double(bytes) / double(rate) * 1e9);
      charged = true;
    }
    if (pace_next_ns_ <= now) return base::Ok();
    uint64_t wait_ns = pace_next_ns_ - now;
    // Look again at the window's end: the guest may have gone idle.
    if (pacer_) {
      const uint64_t in_window =
          std::min(GuestFirstPacer::kWindowNs - 1'000'000, now - pacer_window_ns_);
      wait_ns = std::min(wait_ns, GuestFirstPacer::kWindowNs - in_window);
    }
    // Cancel ends the wait with the job; Complete (which signals wake_) ends
    // it at once. Consuming wake_ here is safe: the copy loop looks at the
    // bitmap before it idles, so a guest write's wake-up is not lost.
    pollfd fds[2] = {{cancel_.fd(), POLLIN, 0}, {wake_.fd(), POLLIN, 0}};
    (void)poll(fds, 2, int(wait_ns / 1'000'000) + 1);
    RETURN_IF_ERROR(CheckCancelled());
    if (fds[1].revents & POLLIN) (void)wake_.Consume();  // only clears the wake-up
    if (complete_requested_) return base::Ok();
  }
}

base::Status MirrorJob::ReadSource(Disk* reader, void* buf, size_t len, uint64_t offset) {
  base::Status st =
      reader != nullptr ? reader->Read(buf, len, offset) : source_.ReadForCopy(buf, len, offset);
  if (!st) return st.error().Wrap("mirror read source");
  return base::Ok();
}

base::Status MirrorJob::FlushSink() {
  DirtyBitmap covered = source_.SwapUnsynced();
  base::Status st = sink_.Flush();
  if (!st) {
    // Same tracking disk, same size: Merge cannot fail (see above).
    (void)source_.dirty().Merge(covered);
    return st.error().Wrap("flush mirror destination");
  }
  since_flush_ = 0;
  return base::Ok();
}

}  // namespace storage
