// One token bucket shared by all streams of a move, so disk and memory
// traffic together stay under the host's bandwidth limit. Callers acquire
// before each Send (FrameStream itself does not use it).
//
// Threads: thread-safe; any number of senders may Acquire concurrently and
// SetRate may be called at any time (waiters see a new rate within 50 ms).
#pragma once

#include <cstdint>

#include "base/mutex.h"
#include "base/result.h"

namespace transport {

class RateLimiter {
 public:
  // bytes_per_second 0 = unlimited. The bucket starts full.
  explicit RateLimiter(uint64_t bytes_per_second);

  // Takes bytes from the bucket, waiting until they are covered. Requests
  // are served in arrival order (each reserves its place, the bucket may go
  // into debt), so a large request delays later ones instead of starving.
  // kCancelled if cancel_fd (-1: none) becomes readable; the reservation is
  // then returned.
  base::Status Acquire(uint64_t bytes, int cancel_fd = -1);

  void SetRate(uint64_t bytes_per_second);
  uint64_t rate() const;

  // Burst: 50 ms worth of the rate, at least 1 MiB.
  static uint64_t BurstFor(uint64_t bytes_per_second);

 private:
  void RefillLocked(uint64_t now_ns) REQUIRES(mu_);

  mutable base::Mutex mu_;
  uint64_t rate_ GUARDED_BY(mu_);  // bytes per second; 0 = unlimited
  // Cumulative accounting: reserved_ counts every byte handed out, credit_
  // every byte the bucket has earned (initial burst + refill). A request
  // whose reservation ends at position P may go once credit_ >= P.
  double credit_ GUARDED_BY(mu_) = 0;
  double reserved_ GUARDED_BY(mu_) = 0;
  uint64_t last_refill_ns_ GUARDED_BY(mu_) = 0;
};

}  // namespace transport
