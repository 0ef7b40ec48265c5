// The shared token bucket, on the real clock with loose bounds.
#include "transport/rate_limiter.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/event_fd.h"

namespace transport {
namespace {

constexpr uint64_t kMiB = 1 << 20;

double MillisSince(uint64_t start_ns) { return double(base::MonotonicNanos() - start_ns) / 1e6; }

TEST(RateLimiterTest, EightMiBAt32MiBPerSecondTakesAQuarterSecond) {
  RateLimiter limiter(32 * kMiB);
  uint64_t start = base::MonotonicNanos();
  for (int i = 0; i < 32; ++i) ASSERT_TRUE(limiter.Acquire(256 << 10).has_value());
  double ms = MillisSince(start);
  // 8 MiB minus the 1.6 MiB burst at 32 MiB/s = 200 ms.
  EXPECT_GT(ms, 150);
  EXPECT_LT(ms, 800);
}

TEST(RateLimiterTest, SharedByConcurrentSenders) {
  RateLimiter limiter(32 * kMiB);
  uint64_t start = base::MonotonicNanos();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 8; ++i) ASSERT_TRUE(limiter.Acquire(256 << 10).has_value());
    });
  for (auto& t : threads) t.join();
  double ms = MillisSince(start);
  EXPECT_GT(ms, 150);
  EXPECT_LT(ms, 800);
}

TEST(RateLimiterTest, UnlimitedIsImmediate) {
  RateLimiter limiter(0);
  uint64_t start = base::MonotonicNanos();
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(limiter.Acquire(64 * kMiB).has_value());
  EXPECT_LT(MillisSince(start), 500);  // a limit of any size would make it seconds
}

TEST(RateLimiterTest, BurstIsFiftyMillisecondsAtLeastOneMiB) {
  EXPECT_EQ(RateLimiter::BurstFor(1000), kMiB);
  EXPECT_EQ(RateLimiter::BurstFor(1000 * kMiB), 50 * kMiB);
  // The first burst goes at once.
  RateLimiter limiter(kMiB);
  uint64_t start = base::MonotonicNanos();
  ASSERT_TRUE(limiter.Acquire(kMiB).has_value());
  EXPECT_LT(MillisSince(start), 500);  // without the burst: a second
}

TEST(RateLimiterTest, CancelEndsTheWaitAndReturnsTheReservation) {
  RateLimiter limiter(kMiB);
  ASSERT_TRUE(limiter.Acquire(kMiB).has_value());  // bucket empty now
  auto cancel = base::EventFd::Create();
  ASSERT_TRUE(cancel.has_value());
  ASSERT_TRUE(cancel->Signal().has_value());
  base::Status st = limiter.Acquire(100 * kMiB, cancel->fd());
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code(), base::Code::kCancelled);
  // Had the 100 MiB stayed reserved, this would wait 100 s.
  uint64_t start = base::MonotonicNanos();
  ASSERT_TRUE(limiter.Acquire(64 << 10).has_value());
  EXPECT_LT(MillisSince(start), 1000);
}

TEST(RateLimiterTest, RaisingTheRateReleasesWaiters) {
  RateLimiter limiter(kMiB);
  ASSERT_TRUE(limiter.Acquire(kMiB).has_value());
  uint64_t start = base::MonotonicNanos();
  std::thread waiter([&] { ASSERT_TRUE(limiter.Acquire(100 * kMiB).has_value()); });
  limiter.SetRate(0);  // unlimited
  waiter.join();
  EXPECT_LT(MillisSince(start), 1000);
  EXPECT_EQ(limiter.rate(), 0u);
}

}  // namespace
}  // namespace transport
