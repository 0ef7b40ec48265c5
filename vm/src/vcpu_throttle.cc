#include "vcpu_throttle.h"

#include "base/log.h"
#include "vcpu_set.h"

namespace vm {

VcpuThrottle::~VcpuThrottle() {
  {
    base::MutexLock lock(mu_);
    stop_ = true;
  }
  cv_.NotifyAll();
  if (thread_.joinable()) thread_.join();
}

void VcpuThrottle::Set(int percent) {
  set_.SetThrottle(percent);
  {
    base::MutexLock lock(mu_);
    percent_ = percent;
  }
  cv_.NotifyAll();
  if (percent > 0 && !thread_.joinable()) thread_ = std::thread([this] { Loop(); });
}

void VcpuThrottle::Loop() {
  base::SetThreadName("throttle");
  base::MutexLock lock(mu_);
  while (!stop_) {
    if (percent_ == 0) {
      while (!stop_ && percent_ == 0) cv_.Wait(mu_);
      continue;
    }
    auto kick = std::chrono::steady_clock::now();
    lock.Unlock();
    set_.ThrottleKick();
    lock.Lock();
    while (!stop_ && cv_.WaitUntil(mu_, kick + kThrottlePeriod)) {
    }
  }
}

}  // namespace vm
