#include "vcpu_set.h"

#include <algorithm>
#include <chrono>

#include "base/log.h"

namespace vm {
namespace {

using Clock = std::chrono::steady_clock;

// At most this much running time is paid back by one throttle sleep: it
// bounds the first sleep after the throttle is switched on (the vCPU may
// have run for minutes) to kMaxThrottleCredit * 99 at 99%.
constexpr Clock::duration kMaxThrottleCredit = std::chrono::milliseconds(20);

}  // namespace

VcpuSet::VcpuSet(std::vector<KvmVcpu*> vcpus, IoBus& bus) {
  for (KvmVcpu* v : vcpus) threads_.push_back(std::make_unique<VcpuThread>(*v, bus, *this, exits_));
  in_loop_.assign(threads_.size(), false);
  run_since_.assign(threads_.size(), Clock::time_point{});
}

VcpuSet::~VcpuSet() { Stop(); }

base::Status VcpuSet::StartThreadsLocked() {
  for (size_t i = 0; i < threads_.size(); ++i) {
    run_since_[i] = Clock::now();
    threads_[i]->ClearImmediateExit();
    threads_[i]->Start();
    in_loop_[i] = true;
    ++active_;
  }
  threads_started_ = true;
  return base::Ok();
}

base::Status VcpuSet::Start() {
  base::MutexLock lock(mu_);
  if (state_ != RunState::kCreated)
    return base::Error(base::Code::kFailedPrecondition,
                       "cannot start: machine is " + std::string(ToString(state_)));
  state_ = RunState::kRunning;
  return StartThreadsLocked();
}

void VcpuSet::MarkPaused() {
  base::MutexLock lock(mu_);
  if (state_ == RunState::kCreated) state_ = RunState::kPaused;
}

base::Status VcpuSet::Pause() {
  base::MutexLock lock(mu_);
  if (state_ == RunState::kPaused) return base::Ok();
  if (state_ == RunState::kCreated) {
    // Nothing runs yet; pausing just means "do not start on your own".
    state_ = RunState::kPaused;
    return base::Ok();
  }
  if (state_ != RunState::kRunning)
    return base::Error(base::Code::kFailedPrecondition,
                       "cannot pause: machine is " + std::string(ToString(state_)) +
                           (failure_.empty() ? "" : " (" + failure_ + ")"));
  pause_requested_ = true;
  KickAllLocked();
  cv_.NotifyAll();  // vCPUs sleeping for the throttle park at once
  while (parked_ != active_) cv_.Wait(mu_);
  if (state_ != RunState::kRunning) {
    // The guest powered off or failed while we were pausing it.
    pause_requested_ = false;
    return base::Error(base::Code::kFailedPrecondition,
                       "machine became " + std::string(ToString(state_)) + " while pausing" +
                           (failure_.empty() ? "" : " (" + failure_ + ")"));
  }
  state_ = RunState::kPaused;
  return base::Ok();
}

base::Status VcpuSet::Resume() {
  base::MutexLock lock(mu_);
  if (state_ == RunState::kRunning) return base::Ok();
  if (state_ != RunState::kPaused)
    return base::Error(base::Code::kFailedPrecondition,
                       "cannot resume: machine is " + std::string(ToString(state_)));
  state_ = RunState::kRunning;
  if (!threads_started_) return StartThreadsLocked();
  pause_requested_ = false;
  for (auto& t : threads_) t->ClearImmediateExit();
  cv_.NotifyAll();
  return base::Ok();
}

void VcpuSet::Stop() {
  {
    base::MutexLock lock(mu_);
    if (state_ == RunState::kRunning || state_ == RunState::kPaused) {
      state_ = RunState::kPoweredOff;
    } else if (state_ == RunState::kCreated) {
      state_ = RunState::kPoweredOff;
    }
    stop_requested_ = true;
    KickAllLocked();
    cv_.NotifyAll();
  }
  for (auto& t : threads_) t->Join();
}

void VcpuSet::KickAllLocked() {
  // Only threads still in their loop: a finished thread's handle may already
  // be joined, and signalling it would be undefined.
  for (size_t i = 0; i < threads_.size(); ++i)
    if (in_loop_[i]) threads_[i]->Kick();
}

RunState VcpuSet::state() const {
  base::MutexLock lock(mu_);
  return state_;
}

std::string VcpuSet::failure() const {
  base::MutexLock lock(mu_);
  return failure_;
}

RunState VcpuSet::WaitWhileRunning(int timeout_ms) {
  base::MutexLock lock(mu_);
  if (timeout_ms < 0) {
    while (state_ == RunState::kRunning) cv_.Wait(mu_);
  } else {
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (state_ == RunState::kRunning && cv_.WaitUntil(mu_, deadline)) {
    }
  }
  return state_;
}

void VcpuSet::SetThrottle(int percent) {
  base::MutexLock lock(mu_);
  throttle_percent_ = std::clamp(percent, 0, 99);
  cv_.NotifyAll();
}

void VcpuSet::ThrottleKick() {
  base::MutexLock lock(mu_);
  if (state_ != RunState::kRunning || pause_requested_ || stop_requested_ || throttle_percent_ == 0)
    return;
  KickAllLocked();
}

bool VcpuSet::OnInterrupted(VcpuThread& vcpu) {
  base::MutexLock lock(mu_);
  if (stop_requested_) return false;
  const uint32_t i = vcpu.index();
  if (!pause_requested_) {
    // A throttle kick (or a stray signal). Clearing immediate_exit here is
    // safe: a pause sets pause_requested_ under mu_ before it kicks, so it
    // cannot be between its flag and its kick now.
    vcpu.ClearImmediateExit();
    if (throttle_percent_ > 0) {
      const int p = throttle_percent_;
      Clock::time_point now = Clock::now();
      Clock::duration ran = std::min(now - run_since_[i], kMaxThrottleCredit);
      const Clock::time_point until = now + ran * p / (100 - p);
      while (!(pause_requested_ || stop_requested_ || throttle_percent_ == 0) &&
             cv_.WaitUntil(mu_, until)) {
      }
    }
    if (stop_requested_) return false;
    if (!pause_requested_) {
      run_since_[i] = Clock::now();
      return true;
    }
    // A pause arrived during the throttle sleep: park now.
  }
  ++parked_;
  cv_.NotifyAll();
  while (pause_requested_ && !stop_requested_) cv_.Wait(mu_);
  --parked_;
  run_since_[i] = Clock::now();
  return !stop_requested_;
}

void VcpuSet::OnGuestStop(RunState state, std::string reason) {
  base::MutexLock lock(mu_);
  if (state_ == RunState::kRunning || state_ == RunState::kPaused) {
    state_ = state;
    failure_ = std::move(reason);
    if (state == RunState::kFailed) base::LogError("guest failed: " + failure_);
  }
  stop_requested_ = true;
  KickAllLocked();
  cv_.NotifyAll();
}

void VcpuSet::OnThreadExit(VcpuThread& vcpu) {
  base::MutexLock lock(mu_);
  in_loop_[vcpu.index()] = false;
  --active_;
  cv_.NotifyAll();
}

}  // namespace vm
