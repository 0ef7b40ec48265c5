// Auto-converge for live moves: keeps every vCPU of a VcpuSet out of KVM_RUN
// for `percent` of its time, so a guest that dirties memory faster than a
// move can send it slows down until the move converges.
//
// How: a thread ("throttle") calls VcpuSet::ThrottleKick() once per
// kThrottlePeriod, which kicks every vCPU (immediate_exit + SIGUSR1, as a
// pause does), so even a guest that never exits is reached. Each kicked vCPU
// sleeps outside KVM_RUN in proportion to what it ran since its last sleep
// (VcpuSet: ran * percent / (100 - percent)); on time, that is percent% of
// the period. What is throttled is the share of wall time spent running the
// guest, not instructions; a late kick is paid back, not lost.
//
// Cost: nothing while the percentage is 0 (the thread waits on a condition
// variable; vCPUs never look at the throttle). Otherwise, per period and
// vCPU, one signal and one KVM_RUN exit and re-entry (≈ 40 µs on the PVM
// host, PLATFORM.md: ≈ 0.4% of a vCPU), one lock of the VcpuSet mutex, plus
// one wake-up of the throttle thread. A pause requested during a throttle
// sleep parks the vCPU at once; throttle 0 ends the sleep.
//
// Thread-safety: Set and the destructor come from the Machine's control
// thread.
#pragma once

#include <chrono>
#include <thread>

#include "base/mutex.h"

namespace vm {

class VcpuSet;

inline constexpr std::chrono::milliseconds kThrottlePeriod{10};

class VcpuThrottle {
 public:
  // Borrows set, which must outlive this object.
  explicit VcpuThrottle(VcpuSet& set) : set_(set) {}
  ~VcpuThrottle();  // stops and joins the thread
  VcpuThrottle(const VcpuThrottle&) = delete;
  VcpuThrottle& operator=(const VcpuThrottle&) = delete;

  // 0..99 (the caller validates); takes effect within one period. The thread
  // starts on the first non-zero value.
  void Set(int percent);

 private:
  void Loop();

  VcpuSet& set_;
  base::Mutex mu_;
  base::CondVar cv_;
  int percent_ GUARDED_BY(mu_) = 0;
  bool stop_ GUARDED_BY(mu_) = false;
  std::thread thread_;  // control thread only
};

}  // namespace vm
