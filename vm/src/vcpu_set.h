// The vCPU threads of one Machine and the run state they share: start, pause
// (every vCPU parked outside KVM_RUN), resume, stop, and the guest's own
// power-off or failure.
//
// Race-freedom of Pause: the request flag is set and every thread kicked under
// mu_; a thread parks only after a KVM_RUN that returned EINTR, i.e. at an
// instruction boundary with no I/O half done; Pause returns only when every
// thread still running its loop is parked. A thread that was handling an exit
// when kicked parks on its next KVM_RUN (immediate_exit is already set).
//
// Throttling (auto-converge, vcpu_throttle.h): ThrottleKick() kicks every
// vCPU the same way, without a pause request. A kicked vCPU sleeps outside
// KVM_RUN for as long as keeps its share of running time at
// (100 - percent)%: ran * percent / (100 - percent), where `ran` is the time
// since it last came back from a sleep or park (at most kMaxThrottleCredit).
// Paying back what it actually ran makes a late kick (a busy host) cost the
// guest a longer sleep instead of giving it more time. A pause or stop
// requested during the sleep is obeyed at once; throttle 0 ends the sleep.
// The kick leaves immediate_exit set; the vCPU clears it under mu_ only while
// no pause is requested, and a pause sets its request under mu_ before
// kicking, so a throttle kick can never swallow a pause.
//
// Thread-safety: Start/Pause/Resume/Stop come from the Machine's control
// thread; Throttle from the throttle thread; the VcpuCoordinator methods from
// vCPU threads; state() and Wait* from anywhere.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "base/mutex.h"
#include "base/result.h"
#include "vcpu.h"

namespace vm {

class VcpuSet final : public VcpuCoordinator {
 public:
  // Borrows the vCPUs and the bus, which must outlive the set.
  VcpuSet(std::vector<KvmVcpu*> vcpus, IoBus& bus);
  ~VcpuSet() override;

  // kCreated or kPaused-before-first-start -> kRunning: launches the threads.
  base::Status Start();
  // kRunning -> kPaused; returns once every vCPU is parked. From kPaused: Ok.
  base::Status Pause();
  // kPaused -> kRunning (starting the threads if they never ran).
  base::Status Resume();
  // Marks a never-started set as paused (a restored VM starts paused).
  void MarkPaused();
  // Stops and joins every thread. The state stays as it was unless the
  // machine was running or paused, in which case it becomes kPoweredOff.
  void Stop();

  RunState state() const;
  std::string failure() const;
  RunState WaitWhileRunning(int timeout_ms);
  uint64_t exits() const { return exits_.load(std::memory_order_relaxed); }

  // The share of time (0..99) vCPUs sleep when throttle-kicked; 0 also
  // wakes any vCPU sleeping for the throttle now.
  void SetThrottle(int percent);
  // Sends every vCPU through its throttle sleep. Does nothing unless the set
  // is running and the throttle is on.
  void ThrottleKick();

  // VcpuCoordinator.
  bool OnInterrupted(VcpuThread& vcpu) override;
  void OnGuestStop(RunState state, std::string reason) override;
  void OnThreadExit(VcpuThread& vcpu) override;

 private:
  void KickAllLocked() REQUIRES(mu_);
  base::Status StartThreadsLocked() REQUIRES(mu_);

  std::atomic<uint64_t> exits_{0};
  std::vector<std::unique_ptr<VcpuThread>> threads_;

  mutable base::Mutex mu_;
  base::CondVar cv_;
  RunState state_ GUARDED_BY(mu_) = RunState::kCreated;
  std::string failure_ GUARDED_BY(mu_);
  bool threads_started_ GUARDED_BY(mu_) = false;
  bool pause_requested_ GUARDED_BY(mu_) = false;
  bool stop_requested_ GUARDED_BY(mu_) = false;
  int throttle_percent_ GUARDED_BY(mu_) = 0;
  // Per vCPU: when it last came back from a throttle sleep or a park.
  std::vector<std::chrono::steady_clock::time_point> run_since_ GUARDED_BY(mu_);
  size_t parked_ GUARDED_BY(mu_) = 0;
  size_t active_ GUARDED_BY(mu_) = 0;          // threads inside their loop
  std::vector<bool> in_loop_ GUARDED_BY(mu_);  // per vCPU index
};

}  // namespace vm
