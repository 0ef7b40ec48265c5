#include "transport/rate_limiter.h"

#include <poll.h>

#include <algorithm>

#include "base/clock.h"

namespace transport {
namespace {

constexpr uint64_t kMinBurstBytes = 1 << 20;
constexpr uint64_t kBurstMs = 50;
// Waiters re-check at least this often, so SetRate takes effect promptly.
constexpr int kMaxWaitSliceMs = 50;

}  // namespace

uint64_t RateLimiter::BurstFor(uint64_t bytes_per_second) {
  return std::max(kMinBurstBytes, bytes_per_second * kBurstMs / 1000);
}

RateLimiter::RateLimiter(uint64_t bytes_per_second)
    : rate_(bytes_per_second),
      credit_(double(BurstFor(bytes_per_second))),
      last_refill_ns_(base::MonotonicNanos()) {}

uint64_t RateLimiter::rate() const {
  base::MutexLock lock(mu_);
  return rate_;
}

void RateLimiter::RefillLocked(uint64_t now_ns) {
  if (now_ns > last_refill_ns_) {
    credit_ += double(rate_) * double(now_ns - last_refill_ns_) / 1e9;
    // An idle bucket holds at most one burst: credit cannot be saved up.
    credit_ = std::min(credit_, reserved_ + double(BurstFor(rate_)));
  }
  last_refill_ns_ = now_ns;
}

void RateLimiter::SetRate(uint64_t bytes_per_second) {
  base::MutexLock lock(mu_);
  RefillLocked(base::MonotonicNanos());  // time so far is earned at the old rate
  rate_ = bytes_per_second;
}

base::Status RateLimiter::Acquire(uint64_t bytes, int cancel_fd) {
  double position;
  {
    base::MutexLock lock(mu_);
    if (rate_ == 0) return base::Ok();
    RefillLocked(base::MonotonicNanos());
    reserved_ += double(bytes);
    position = reserved_;
  }
  for (;;) {
    int wait_ms;
    {
      base::MutexLock lock(mu_);
      RefillLocked(base::MonotonicNanos());
      // Unlimited now, or our place in line is paid for.
      if (rate_ == 0 || credit_ >= position) return base::Ok();
      double ms = (position - credit_) * 1000.0 / double(rate_);
      wait_ms = std::clamp(int(ms) + 1, 1, kMaxWaitSliceMs);
    }
    pollfd pfd{cancel_fd, POLLIN, 0};
    int r = ::poll(&pfd, cancel_fd >= 0 ? 1 : 0, wait_ms);
    if (r > 0) {
      base::MutexLock lock(mu_);
      // Give the bytes back as credit: everyone queued behind us moves up.
      credit_ += double(bytes);
      return base::Error(base::Code::kCancelled, "cancelled while waiting for bandwidth");
    }
  }
}

}  // namespace transport
