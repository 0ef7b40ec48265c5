// MirrorJob: copies a running disk (a TrackingDisk) into a BlockSink while
// the guest keeps writing, until the two are equal and the caller switches.
//
// Life of a job:
//   1. Start: the job thread (named "mirror") opens its own reader of the
//      source if the caller gave a way to (a raw file opened a second time,
//      with its own io_uring ring), seeds the dirty bitmap (kFullScan: every
//      block MapExtent calls data, and zero/unallocated runs unless the sink
//      already reads them that way; kFromBitmap: only what the tracking
//      disk's bitmap, plus options.resume, says), then attaches the mirror:
//      from here guest writes to copied blocks are written through.
//   2. Bulk copy: chunk by chunk (options.chunk_size, default 1 MiB) in disk
//      order, each chunk claimed with TrackingDisk::BeginCopy so guest
//      writes elsewhere never wait (tracking_disk.h has the ordering
//      argument). All-zero blocks become WriteZeroes (holes stay holes). The
//      sink is flushed every options.flush_interval bytes so the set of
//      unconfirmed ranges stays small.
//   3. Mirroring: when no dirty block remains, the job is "ready"
//      (WaitReady returns) and idles, copying what source-only writes dirty.
//   4. Complete: the caller pauses guest I/O (TrackingDisk::PauseIo), calls
//      Complete(); the job copies the remaining dirty blocks, flushes the
//      sink, detaches and reports kConverged. The sink now equals the source:
//      the caller may switch the running disk (TrackingDisk::SwitchTo) and
//      resume guest I/O.
// A failure (sink error, source read error) or Cancel ends the job with that
// error: guest writes are never failed by it, the mirror detaches, and the
// tracking disk's bitmap keeps every block not confirmed at the destination
// (dirty plus unflushed), so a new job with kFromBitmap on the same sink
// resumes. ResumeBitmap() is what to save for a resume after a restart.
//
// Threads: the public methods are thread-safe. The job borrows the tracking
// disk and the sink; both must outlive it. The destructor cancels and joins.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>

#include "base/clock.h"
#include "base/event_fd.h"
#include "base/result.h"
#include "storage/block_sink.h"
#include "storage/dirty_bitmap.h"
#include "storage/tracking_disk.h"

namespace storage {

enum class MirrorStart {
  kFullScan = 1,    // a fresh copy: everything the source holds
  kFromBitmap = 2,  // a resumed copy: only what the bitmap(s) say differs
};

enum class MirrorState {
  kCopying = 1,     // bulk copy running
  kReady = 2,       // no dirty blocks left; mirroring guest writes
  kCompleting = 3,  // Complete() called: draining with guest I/O paused
  kConverged = 4,   // the sink equals the source and is durable
  kFailed = 5,      // error() says why; the bitmap keeps what is left
  kCancelled = 6,
};
std::string_view ToString(MirrorState state);

// Opens a second read handle on the source, in the job thread (so its
// io_uring ring belongs to that thread). Only for formats where a second
// handle sees the guest's writes at once (raw: same page cache).
using SourceOpener = std::function<base::Result<std::unique_ptr<Disk>>()>;

struct MirrorOptions {
  MirrorStart start = MirrorStart::kFullScan;
  // Merged into the tracking disk's bitmap before the copy (a bitmap loaded
  // from an interrupted attempt). Same geometry; borrowed during Start only.
  const DirtyBitmap* resume = nullptr;
  // The destination shares the source's backing chain (a mirrored top layer
  // whose read-only layers were copied separately): runs the top layer
  // leaves unallocated are not copied.
  bool skip_unallocated = false;
  uint64_t chunk_size = 1 << 20;        // multiple of the bitmap granularity
  uint64_t flush_interval = 256 << 20;  // bytes written to the sink between flushes
  // Pace the copy (bytes read from the source per second; 0: as fast as the
  // devices go). Bulk copy and guest I/O share the device: on a busy disk a
  // cap is what keeps a flush-heavy guest within its budget (mirror_bench).
  uint64_t max_bytes_per_second = 0;
  SourceOpener open_source;             // empty: read through the tracking disk
  base::Clock* clock = nullptr;         // null: the monotonic clock
};

struct MirrorProgress {
  MirrorState state = MirrorState::kCopying;
  uint64_t bytes_total = 0;      // disk size
  uint64_t bytes_copied = 0;     // read from the source and written to the sink
  uint64_t bytes_remaining = 0;  // dirty now (plus what a full scan has yet to mark)
  double bytes_per_second = 0;   // copy rate, smoothed
  double eta_seconds = -1;       // remaining / rate; -1 while unknown
};

class MirrorJob {
 public:
  // Starts the job thread. kInvalidArgument for bad options, and whatever
  // AttachMirror refuses (another mirror attached, size mismatch) is
  // reported by the job (Wait) since attaching happens after the scan.
  static base::Result<std::unique_ptr<MirrorJob>> Start(TrackingDisk& source, BlockSink& sink,
                                                        MirrorOptions options);
  ~MirrorJob();
  MirrorJob(const MirrorJob&) = delete;
  MirrorJob& operator=(const MirrorJob&) = delete;

  MirrorProgress Progress() const;

  // Returns once the job is ready (bulk copy done), or with the job's error,
  // kCancelled if cancel_fd (-1: none) is signalled, kDeadlineExceeded after
  // timeout_ms (-1: none).
  base::Status WaitReady(int cancel_fd, int timeout_ms);
  // Precondition: guest I/O paused on the tracking disk (kFailedPrecondition
  // otherwise). Drains, flushes the sink, detaches; returns once converged or
  // with the job's error. Polls cancel_fd like WaitReady.
  base::Status Complete(int cancel_fd = -1);
  // Stops the job (idempotent); Wait then returns kCancelled.
  void Cancel();
  // Joins the job thread; its final status (Ok once converged).
  base::Status Wait();

  // Signalled when the job ends (converged, failed or cancelled).
  int done_fd() const { return done_.fd(); }

 private:
  MirrorJob(TrackingDisk& source, BlockSink& sink, MirrorOptions options, base::EventFd cancel,
            base::EventFd wake, base::EventFd ready, base::EventFd done);
  void Run();
  base::Status RunCopy();
  base::Status Seed(Disk* reader);
  base::Status CopyChunk(Disk* reader, uint64_t offset, uint64_t len);
  base::Status CopyRun(Disk* reader, uint64_t offset, uint64_t len);
  base::Status FlushSink();
  base::Status ReadSource(Disk* reader, void* buf, size_t len, uint64_t offset);
  void SetState(MirrorState state);
  void AddCopied(uint64_t bytes);
  base::Status CheckCancelled() const;
  // Waits (cancellably) so the copy stays under max_bytes_per_second.
  base::Status Pace(uint64_t bytes);
  // The job's final status; only once the state is terminal.
  base::Status FinalStatus() const;  // mu_ held

  TrackingDisk& source_;
  BlockSink& sink_;
  MirrorOptions options_;
  base::MonotonicClock monotonic_;
  base::Clock& clock_;
  base::EventFd cancel_;  // Cancel() -> every wait of the job thread
  base::EventFd wake_;    // guest dirtied a clean block -> idle copier
  base::EventFd ready_;   // bulk copy done or job ended -> WaitReady (never consumed)
  base::EventFd done_;    // job ended -> waiters (never consumed)
  std::atomic<bool> complete_requested_{false};
  std::vector<uint8_t> buf_;  // job thread only
  uint64_t since_flush_ = 0;  // job thread only
  uint64_t pace_start_ns_ = 0;  // job thread only: pacing window start
  uint64_t pace_bytes_ = 0;     // job thread only: bytes copied in the window

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  MirrorState state_ = MirrorState::kCopying;
  std::optional<base::Error> error_;
  uint64_t copied_ = 0;
  uint64_t unscanned_ = 0;
  double rate_ = 0;
  uint64_t rate_mark_ns_ = 0;
  uint64_t rate_mark_bytes_ = 0;

  std::mutex join_mu_;  // one joiner at a time
  std::thread thread_;  // last: started after every member above exists
};

}  // namespace storage
