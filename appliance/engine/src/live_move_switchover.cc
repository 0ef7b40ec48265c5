// LiveMoveSource::Impl, the switchover (docs/live_move.md "Switchover"): the
// pause, the mirrors' completion, the last dirty pages, the stream ends and
// DeviceState; and, for a failure before DeviceState went out, undoing
// everything so the VM goes on here.
#include "live_move_source_impl.h"

#include <nlohmann/json.hpp>

#include "base/log.h"
#include "protocol/move_protocol.h"

namespace appliance {
namespace {

constexpr int kSwitchSendTimeoutMs = 30000;

}  // namespace

// ---- Switchover -----------------------------------------------------------------

base::Status LiveMoveSource::Impl::SendSwitchover(std::vector<uint64_t>& pending) {
  vm::Machine& m = *opt_.machine;
  SetPhase(LiveMovePhase::kSwitchover);
  pause_ns_ = base::MonotonicNanos();
  // A VM that was paused when the move began (the plan says so) is already
  // drained and stays paused whatever happens: paused_ is only for a pause
  // this move made and must undo on failure.
  if (!req_.prepare.paused) {
    if (auto st = opt_.pause(); !st) {
      // Pause stops the vCPUs before it drains and reads the clock, so a
      // failure may leave them stopped: then the failure path must resume.
      paused_ = m.state() == vm::RunState::kPaused;
      return st.error().Wrap("pause the vm for the switchover");
    }
    paused_ = true;
  }
  for (storage::TrackingDisk* d : opt_.disks) d->PauseIo();
  io_paused_ = true;
  for (size_t i = 0; i < jobs_.size(); ++i) {
    if (auto st = jobs_[i]->Complete(cancel_.fd()); !st)
      return StreamsFailure(st.error().Wrap("complete the mirror of disk " + std::to_string(i)));
  }
  RETURN_IF_ERROR(CheckAlive(false));
  ASSIGN_OR_RETURN(std::vector<uint64_t> last, m.HarvestDirtyPages());
  MergePages(pending, last);
  ASSIGN_OR_RETURN(PageSendStats sent,
                   SendDirtyPages(m.memory_base(), m.memory_size(), pending, *pool_, cancel_.fd()));
  if (auto st = pool_->Drain(std::nullopt, cancel_.fd(), kSwitchSendTimeoutMs); !st)
    return StreamsFailure(st.error());
  for (size_t i = 0; i < pool_->size(); ++i) {
    auto end = EncodeStreamEnd({pool_->data_frames(i)});
    if (auto st =
            pool_->SendDirect(i, MoveFrame::kStreamEnd, end, cancel_.fd(), kSwitchSendTimeoutMs);
        !st)
      return StreamsFailure(st.error());
  }
  ASSIGN_OR_RETURN(std::string state, m.SaveDeviceState());
  RETURN_IF_ERROR(CheckAlive(false));
  const auto* p = reinterpret_cast<const uint8_t*>(state.data());
  if (auto st =
          pool_->SendDirect(0, MoveFrame::kDeviceState, std::span<const uint8_t>(p, state.size()),
                            cancel_.fd(), kSwitchSendTimeoutMs);
      !st)
    return StreamsFailure(st.error());
  // From here on the destination may own the VM.
  {
    base::MutexLock lock(mu_);
    state_out_ = true;
    status_.memory_sent += sent.bytes;
    status_.zero_pages += sent.zero_pages;
    status_.memory_remaining = 0;
  }
  UpdateDiskProgress();
  base::LogInfo("live move " + req_.prepare.migration_id + ": device state sent (" +
                std::to_string(state.size()) + " bytes, " + std::to_string(sent.pages) +
                " last pages) after " + Fixed(MsSince(pause_ns_)) + " ms paused");
  return base::Ok();
}

// Before DeviceState: the VM goes on here as if nothing happened.
void LiveMoveSource::Impl::FailBeforeState(base::Error error) {
  bool overdue = false;
  {
    // A wait that noticed the cancel fd says only "cancelled": say why.
    base::MutexLock lock(mu_);
    overdue = overdue_error_.has_value();
    if (overdue)
      error = *overdue_error_;
    else if (error.code() == base::Code::kCancelled && !abort_reason_.empty())
      error = base::Error(base::Code::kCancelled, "move cancelled: " + abort_reason_);
  }
  // A stream error here is usually the echo of the destination failing.
  if (pool_ && pool_->error() && error.code() != base::Code::kCancelled && !overdue)
    error = StreamsFailure(error);
  // Cancel first so mirror threads and guest write-throughs blocked on a
  // full lane return at once (an eventfd write fails only at counter
  // overflow, when the fd is readable anyway).
  (void)cancel_.Signal();
  for (auto& j : jobs_) j->Cancel();
  // Cancelled jobs end with kCancelled or their own failure; the move's
  // error is already chosen, so their results add nothing.
  for (auto& j : jobs_) (void)j->Wait();
  ResumeHere();
  if (pool_) {
    pool_->Stop();
    // Best effort: tell the destination why, so its error names the cause.
    // It fails when the streams are what failed; the destination then ends
    // the move on its own when they close.
    nlohmann::json reason = {{"reason", error.message()}};
    if (auto st = pool_->SendDirect(0, MoveFrame::kAbort, JsonPayload(reason), -1, 1000); !st)
      base::LogInfo("live move " + req_.prepare.migration_id +
                    ": abort not delivered: " + st.error().ToString());
    for (size_t i = 0; i < pool_->size(); ++i) pool_->stream(i).Shutdown();
  }
  if (reader_.joinable()) reader_.join();
  jobs_.clear();
  sinks_.clear();
  Finish(LiveMovePhase::kFailed, error);
}

void LiveMoveSource::Impl::ResumeHere() {
  KeepOnlyVcpusPaused();
  if (paused_) {
    if (auto st = opt_.resume(); !st)
      base::LogError("live move: resuming the vm failed: " + st.error().ToString());
    paused_ = false;
  }
}

void LiveMoveSource::Impl::ResumeDiskIo() {
  if (!io_paused_) return;
  for (storage::TrackingDisk* d : opt_.disks) d->ResumeIo();
  io_paused_ = false;
}

// In doubt the vCPUs stay stopped (the destination may run the VM), but
// nothing else may stay half-switched: paused disk I/O would hang a later
// stop (its drain flushes through the tracking disks) and an admin's resume.
// The mirrors are detached, so resumed disk I/O goes to the source only.
void LiveMoveSource::Impl::KeepOnlyVcpusPaused() {
  vm::Machine& m = *opt_.machine;
  ResumeDiskIo();
  if (throttle_ != 0) {
    if (auto st = m.SetThrottle(0); !st)
      base::LogError("live move: removing the throttle failed: " + st.error().ToString());
    throttle_ = 0;
  }
  if (dirty_log_on_) {
    if (auto st = m.DisableDirtyLog(); !st)
      base::LogWarning("live move: disabling the dirty log failed: " + st.error().ToString());
    dirty_log_on_ = false;
  }
}

}  // namespace appliance
