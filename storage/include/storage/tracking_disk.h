// TrackingDisk: the Disk a VM's virtio-blk sees while its disk may be moved.
// It wraps the real disk, records every guest write in a DirtyBitmap, and
// while a MirrorJob is attached mirrors guest writes into the job's sink
// (write-through) without ever making a guest write wait for the bulk copy.
// It also pauses guest I/O and swaps the inner disk for the switch at the end
// of a storage move.
//
// Ordering (why the destination ends equal to the source; docs/storage.md
// "Dirty tracking and mirroring" has the long form). The invariant, for every
// block B of the bitmap: when no operation touching B is in flight, either B
// is dirty or the sink holds the same bytes for B as the source.
//   - A guest write is one of two kinds, decided under mu_ before it starts:
//     * write-through, if a mirror is attached and healthy, some block of the
//       range is clean, the range does not overlap the region the copier is
//       copying, and no other write-through in flight overlaps it. It writes
//       the source, then the sink, with the same bytes. On a sink failure it
//       sets the range dirty (and the job fails); the guest still succeeds.
//     * source-only, otherwise. It writes the source and then sets the range
//       dirty. Setting the bit *after* the write is what makes it safe: a
//       copier that read the old bytes before the write landed has cleared
//       the bit earlier, so the bit set now forces another copy.
//   - The copier claims a region (BeginCopy): from then on new writes into it
//     are source-only, and it waits for the write-throughs already in flight
//     there to finish. Only then does it take (clear) the dirty bits and read
//     the source. No write-through can interleave with its read and its sink
//     write, and every source-only write that may have been missed sets its
//     bit again afterwards.
//   - Write-throughs never overlap each other in flight, so the sink sees
//     overlapping guest writes in the same order as the source.
// A guest write never waits for the copier: the only waits are the copier's
// (for write-throughs, microseconds each) and PauseIo's.
//
// Threads: every method is thread-safe. Disk's "callers serialise" does not
// apply here; calls into the inner disk are serialised by io_mu_.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "base/event_fd.h"
#include "base/mutex.h"
#include "base/result.h"
#include "storage/block_sink.h"
#include "storage/dirty_bitmap.h"
#include "storage/disk.h"

namespace storage {

// Guest I/O through a TrackingDisk, cumulative since Create: what the
// mirror's guest-first pacer (mirror_job.h) reads to see whether the guest is
// busy and how long its I/O takes. Latency runs from admission (after any
// PauseIo wait) to completion, so it includes lock and device waits.
struct GuestIoStats {
  uint64_t ops = 0;        // guest Read/Write/Discard/WriteZeroes/Flush completed
  uint64_t busy_ns = 0;    // their summed latency
  uint64_t in_flight = 0;  // guest ops admitted and not yet completed (now)
};

class TrackingDisk final : public Disk {
 public:
  // Owns inner. Tracking starts now: every write from here on is recorded.
  static base::Result<std::unique_ptr<TrackingDisk>> Create(
      std::unique_ptr<Disk> inner, uint64_t granularity = kDefaultDirtyGranularity);
  ~TrackingDisk() override;

  // Disk.
  base::Status Read(void* buf, size_t len, uint64_t offset) override;
  base::Status Write(const void* buf, size_t len, uint64_t offset) override;
  // Tracked and mirrored exactly like a Write of zeros (the sink gets
  // WriteZeroes): the range is marked dirty or written through.
  base::Status Discard(uint64_t offset, uint64_t len) override;
  base::Status WriteZeroes(uint64_t offset, uint64_t len) override;
  // Flushes the source only. The sink's durability is the job's business: it
  // flushes the sink before it reports convergence, and until the switch the
  // source is the disk of record (a failed move resumes the VM from it).
  base::Status Flush() override;
  uint64_t size() const override { return size_; }
  bool read_only() const override { return read_only_; }
  base::Result<Extent> MapExtent(uint64_t offset, uint64_t max_len) override;

  // Guest writes since Create (or since a copy took them). Owned by this disk.
  DirtyBitmap& dirty() { return dirty_; }
  // Guest I/O counters (see GuestIoStats); a consistent snapshot.
  GuestIoStats guest_io_stats() const;

  // --- Pause and switch (the end of a storage move) ---
  // Blocks new guest I/O (Read/Write/Flush wait) and returns once the guest
  // I/O in flight has finished. Copier reads (ReadForCopy) still run.
  void PauseIo();
  void ResumeIo();
  bool io_paused() const;
  // Replaces the inner disk and returns the old one. Only while paused and
  // with no mirror attached; the new disk must have the same size.
  base::Result<std::unique_ptr<Disk>> SwitchTo(std::unique_ptr<Disk> next);

  // --- The mirror's side (used by MirrorJob) ---
  // Starts write-through into sink, which must stay alive until
  // DetachMirror returns. kFailedPrecondition if a mirror is attached or
  // the sizes differ. wake is signalled (and may be -1) when a guest write
  // dirties a clean block, so an idle copier looks again.
  base::Status AttachMirror(BlockSink& sink, int wake_fd);
  // Stops write-through and waits for write-throughs in flight. Afterwards
  // guest writes are source-only (tracked in the bitmap) again.
  void DetachMirror();
  // The first sink failure seen by a write-through since AttachMirror.
  std::optional<base::Error> mirror_error() const;

  // Claims [offset, offset + len) for a copy: new guest writes into it become
  // source-only, and this waits for overlapping write-throughs in flight.
  // Polls cancel_fd (-1: none) while it waits: kCancelled.
  base::Status BeginCopy(uint64_t offset, uint64_t len, int cancel_fd);
  void EndCopy();
  // Waits (at most max_wait_ms) while a guest Flush is in flight: the copier
  // calls it before each chunk so a guest flush competes with at most one
  // chunk of copy I/O for the device. Bounded, so the copy always progresses.
  void YieldToGuestFlush(int max_wait_ms);
  // Reads / maps the inner disk for the copier, serialised with guest I/O,
  // for formats that cannot be read through a second handle (qcow2 caches
  // metadata). Not blocked by PauseIo.
  base::Status ReadForCopy(void* buf, size_t len, uint64_t offset);
  base::Result<Extent> MapExtentForCopy(uint64_t offset, uint64_t max_len);

  // Sink durability accounting: ranges written to the sink (copies and
  // write-throughs) since the last flush began. SwapUnsynced hands the set a
  // flush about to start covers and leaves an empty one; if that flush fails
  // the caller merges it into dirty().
  void MarkUnsynced(uint64_t offset, uint64_t len);
  DirtyBitmap SwapUnsynced();
  // dirty() and the unsynced ranges together: what a later attempt must copy
  // if the destination lost everything it did not confirm as durable.
  DirtyBitmap ResumeBitmap() const;

 private:
  struct Range {
    uint64_t offset = 0;
    uint64_t end = 0;
    bool Overlaps(uint64_t o, uint64_t e) const { return o < end && offset < e; }
  };
  enum class WriteKind { kSourceOnly = 1, kWriteThrough = 2 };

  TrackingDisk(std::unique_ptr<Disk> inner, DirtyBitmap dirty, DirtyBitmap unsynced);
  // Waits while paused and counts the op as in flight; returns its admission
  // time for EndGuestOp's latency accounting.
  uint64_t BeginGuestOp() REQUIRES(mu_);
  void EndGuestOp(uint64_t begin_ns) REQUIRES(mu_);
  WriteKind ClassifyWrite(uint64_t offset, uint64_t end) const REQUIRES(mu_);
  // Every guest change of contents (Write, Discard, WriteZeroes): classified,
  // source_op(inner) under io_mu_, then sink_op(sink) or the dirty bit. `what`
  // prefixes a sink error.
  template <typename SourceOp, typename SinkOp>
  base::Status GuestWrite(const char* what, uint64_t offset, uint64_t len, SourceOp source_op,
                          SinkOp sink_op);
  void Wake() const REQUIRES(mu_);

  const uint64_t size_;
  const bool read_only_;
  DirtyBitmap dirty_;  // atomic bits: set without mu_

  mutable base::Mutex io_mu_;  // serialises calls into inner_
  std::unique_ptr<Disk> inner_ GUARDED_BY(io_mu_);

  mutable base::Mutex mu_;  // guest-op accounting and the mirror state below
  base::CondVar cv_;
  bool paused_ GUARDED_BY(mu_) = false;
  uint64_t guest_ops_ GUARDED_BY(mu_) = 0;      // guest Read/Write/Flush in flight
  uint64_t guest_flushes_ GUARDED_BY(mu_) = 0;  // guest Flush in flight
  uint64_t guest_done_ GUARDED_BY(mu_) = 0;     // guest ops completed (GuestIoStats::ops)
  uint64_t guest_busy_ns_ GUARDED_BY(mu_) = 0;  // their summed latency
  BlockSink* sink_ GUARDED_BY(mu_) = nullptr;
  int wake_fd_ GUARDED_BY(mu_) = -1;
  std::optional<base::Error> mirror_error_ GUARDED_BY(mu_);
  std::optional<Range> copying_ GUARDED_BY(mu_);
  std::vector<Range> write_through_ GUARDED_BY(mu_);  // in flight
  DirtyBitmap unsynced_ GUARDED_BY(mu_);
};

}  // namespace storage
