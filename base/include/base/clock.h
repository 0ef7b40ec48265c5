// Time sources. Code that measures or waits takes a Clock& so tests can use
// a FakeClock; MonotonicClock is the real one.
#pragma once

#include <cstdint>

namespace base {

uint64_t MonotonicNanos();
inline double MonotonicSeconds() { return MonotonicNanos() / 1e9; }

class Clock {
 public:
  virtual ~Clock() = default;
  virtual uint64_t NowNanos() = 0;
};

class MonotonicClock final : public Clock {
 public:
  uint64_t NowNanos() override { return MonotonicNanos(); }
};

}  // namespace base
