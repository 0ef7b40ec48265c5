#include "vcpu_throttle.h"

#include "base/log.h"
#include "vcpu_set.h"

namespace vm {

VcpuThrottle::~VcpuThrottle() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void VcpuThrottle::Set(int percent) {
  set_.SetThrottle(percent);
  {
    std::lock_guard lock(mu_);
    percent_ = percent;
  }
  cv_.notify_all();
  if (percent > 0 && !thread_.joinable()) thread_ = std::thread([this] { Loop(); });
}

void VcpuThrottle::Loop() {
  base::SetThreadName("throttle");
  std::unique_lock lock(mu_);
  while (!stop_) {
    if (percent_ == 0) {
      cv_.wait(lock, [&] { return stop_ || percent_ > 0; });
      continue;
    }
    auto kick = std::chrono::steady_clock::now();
    lock.unlock();
    set_.ThrottleKick();
    lock.lock();
    cv_.wait_until(lock, kick + kThrottlePeriod, [&] { return stop_; });
  }
}

}  // namespace vm
