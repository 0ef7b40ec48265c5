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
  std::lock_guard lock(mu_);
  if (state_ != RunState::kCreated)
    return base::Error(base::Code::kFailedPrecondition,
                       "cannot start: machine is " + std::string(ToString(state_)));
  state_ = RunState::kRunning;
  return StartThreadsLocked();
}

void VcpuSet::MarkPaused() {
  std::lock_guard lock(mu_);
  if (state_ == RunState::kCreated) state_ = RunState::kPaused;
}

base::Status VcpuSet::Pause() {
  std::unique_lock lock(mu_);
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
  cv_.notify_all();  // vCPUs sleeping for the throttle park at once
  cv_.wait(lock, [&] { return parked_ == active_; });
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
  std::lock_guard lock(mu_);
  if (state_ == RunState::kRunning) return base::Ok();
  if (state_ != RunState::kPaused)
    return base::Error(base::Code::kFailedPrecondition,
                       "cannot resume: machine is " + std::string(ToString(state_)));
  state_ = RunState::kRunning;
  if (!threads_started_) return StartThreadsLocked();
  pause_requested_ = false;
  for (auto& t : threads_) t->ClearImmediateExit();
  cv_.notify_all();
  return base::Ok();
}

void VcpuSet::Stop() {
  {
    std::lock_guard lock(mu_);
    if (state_ == RunState::kRunning || state_ == RunState::kPaused) {
      state_ = RunState::kPoweredOff;
    } else if (state_ == RunState::kCreated) {
      state_ = RunState::kPoweredOff;
    }
    stop_requested_ = true;
    KickAllLocked();
    cv_.notify_all();
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
  std::lock_guard lock(mu_);
  return state_;
}

std::string VcpuSet::failure() const {
  std::lock_guard lock(mu_);
  return failure_;
}

RunState VcpuSet::WaitWhileRunning(int timeout_ms) {
  std::unique_lock lock(mu_);
  auto running = [&] { return state_ == RunState::kRunning; };
  if (timeout_ms < 0) {
    cv_.wait(lock, [&] { return !running(); });
  } else {
    cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return !running(); });
  }
  return state_;
}

void VcpuSet::SetThrottle(int percent) {
  std::lock_guard lock(mu_);
  throttle_percent_ = std::clamp(percent, 0, 99);
  cv_.notify_all();
}

void VcpuSet::ThrottleKick() {
  std::lock_guard lock(mu_);
  if (state_ != RunState::kRunning || pause_requested_ || stop_requested_ || throttle_percent_ == 0) return;
  KickAllLocked();
}

bool VcpuSet::OnInterrupted(VcpuThread& vcpu) {
  std::unique_lock lock(mu_);
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
      cv_.wait_until(lock, now + ran * p / (100 - p),
                     [&] { return pause_requested_ || stop_requested_ || throttle_percent_ == 0; });
    }
    if (stop_requested_) return false;
    if (!pause_requested_) {
      run_since_[i] = Clock::now();
      return true;
    }
    // A pause arrived during the throttle sleep: park now.
  }
  ++parked_;
  cv_.notify_all();
  cv_.wait(lock, [&] { return !pause_requested_ || stop_requested_; });
  --parked_;
  run_since_[i] = Clock::now();
  return !stop_requested_;
}

void VcpuSet::OnGuestStop(RunState state, std::string reason) {
  std::lock_guard lock(mu_);
  if (state_ == RunState::kRunning || state_ == RunState::kPaused) {
    state_ = state;
    failure_ = std::move(reason);
    if (state == RunState::kFailed) base::LogError("guest failed: " + failure_);
  }
  stop_requested_ = true;
  KickAllLocked();
  cv_.notify_all();
}

void VcpuSet::OnThreadExit(VcpuThread& vcpu) {
  std::lock_guard lock(mu_);
  in_loop_[vcpu.index()] = false;
  --active_;
  cv_.notify_all();
}

}  // namespace vm
