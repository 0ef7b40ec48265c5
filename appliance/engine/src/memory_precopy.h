// Memory pre-copy for a live move's source (docs/live_move.md "Memory
// pre-copy"): sending guest pages as PageBatch frames, and the model that
// decides when to switch over and how hard to throttle the guest.
//
// Page batches hold pages of one 1 MiB group of guest RAM (256 pages) and go
// on stream group % N's memory lane. Page data is copied out of guest memory
// when the batch is queued; a page that changes afterwards is dirty again in
// the next harvest, so the copy never needs to be atomic.
#pragma once

#include <cstdint>
#include <span>

#include <vector>

#include "base/result.h"
#include "stream_pool.h"
#include "vm/machine.h"

namespace appliance {

struct PageSendStats {
  uint64_t pages = 0;       // pages that crossed as data
  uint64_t zero_pages = 0;  // all-zero pages: skipped (full pass) or sent as a flag
  uint64_t bytes = 0;       // page bytes queued
};

// The full pass: every page of `populated` (Machine::PopulatedMemory: the
// RAM ever written) that is not all zeros. The destination's memory starts
// zeroed, so zero pages and never-written RAM are skipped and only counted.
base::Result<PageSendStats> SendAllPages(const uint8_t* memory, uint64_t memory_bytes,
                                         std::span<const vm::Machine::MemoryRange> populated,
                                         StreamPool& pool, int cancel_fd);
// A round: the pages set in `dirty` (one bit per page, as
// Machine::HarvestDirtyPages returns), zero pages as a flag without data.
base::Result<PageSendStats> SendDirtyPages(const uint8_t* memory, uint64_t memory_bytes,
                                           std::span<const uint64_t> dirty, StreamPool& pool,
                                           int cancel_fd);

uint64_t CountPages(std::span<const uint64_t> bitmap);
void MergePages(std::vector<uint64_t>& into, std::span<const uint64_t> from);

// Rates, downtime prediction and auto-converge. Pure arithmetic on what the
// caller measured, so the policy is testable without a guest.
class ConvergenceModel {
 public:
  // bandwidth_limit: bytes/s the move may use (0 none) caps the estimate.
  explicit ConvergenceModel(uint64_t bandwidth_limit) : limit_(bandwidth_limit) {}

  // wire_bytes left the host in `seconds` while the link was kept busy.
  // Too small a sample says more about latency than about the link and is
  // ignored (the previous estimate stays).
  void NoteSend(uint64_t wire_bytes, double seconds);
  // A harvest found dirty_pages written in the last interval_seconds.
  void NoteHarvest(uint64_t dirty_pages, double interval_seconds);

  double bandwidth() const;                          // bytes/s; an assumed 16 MiB/s until measured
  double dirty_rate() const { return dirty_rate_; }  // bytes/s, last harvest

  // Pause time if the switchover started now with this much left to send:
  // bytes / bandwidth + the fixed switchover cost.
  double PredictMs(uint64_t bytes_left) const;
  void set_overhead_ms(double ms) { overhead_ms_ = ms; }
  double overhead_ms() const { return overhead_ms_; }

  // Auto-converge: the throttle for the next round. From round 3 on (round
  // 1 is the full pass), a round whose dirty set (what the caller judges:
  // pages or bytes, the same measure in both) did not shrink by a quarter
  // against the previous one raises it: 20 %, then +10 a round, at most 90 %.
  static int NextThrottle(uint32_t round, uint64_t previous_dirty, uint64_t dirty, int current);

 private:
  uint64_t limit_;
  double bandwidth_ = 0;
  uint64_t sample_bytes_ = 0;  // pooled small samples
  double sample_seconds_ = 0;
  double dirty_rate_ = 0;
  double overhead_ms_ = 20;
};

}  // namespace appliance
