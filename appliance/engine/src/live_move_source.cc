// LiveMoveSource: the source worker's engine (the sequence is
// docs/live_move.md; the data plane pieces are stream_pool.h, peer_sink.h
// and memory_precopy.h; the stages of the move are in the files
// live_move_source_impl.h lists).
//
// The move thread runs, in order: connect the streams, copy the read-only
// layers, start a mirror per disk and the memory pre-copy, and once the
// prediction fits the downtime budget, the switchover. This file holds the
// thread, the status ferryd polls, and the liveness every wait before
// DeviceState keeps (the lease, the time limit, the watchdog).
#include "live_move_source_impl.h"

#include <unistd.h>

#include "base/log.h"

namespace appliance {

LiveMoveSource::Impl::Impl(Options options, LiveMoveRequest request, StorageMovePlan plan,
                           MigrationIdBytes id, base::EventFd cancel, base::EventFd reader_done,
                           std::shared_ptr<const transport::TlsContext> tls)
    : opt_(std::move(options)),
      req_(std::move(request)),
      plan_(std::move(plan)),
      id_(id),
      tls_(std::move(tls)),
      cancel_(std::move(cancel)),
      reader_done_(std::move(reader_done)),
      model_(req_.bandwidth_limit) {
  start_ns_ = base::MonotonicNanos();
  last_poll_ns_ = start_ns_;
  status_.migration_id = req_.prepare.migration_id;
  status_.memory_bytes = opt_.machine->memory_size();
  status_.disk_bytes = req_.prepare.disk_bytes;
  peer_ = req_.data_host + ":" + std::to_string(req_.data_port);
}

LiveMoveSource::Impl::~Impl() {
  Abort("the move was abandoned");
  if (thread_.joinable()) thread_.join();
  StopWatchdog();
}

void LiveMoveSource::Impl::StartThread() {
  watchdog_ = std::thread([this] {
    base::SetThreadName("live-move-wd");
    Watch();
  });
  thread_ = std::thread([this] {
    base::SetThreadName("live-move");
    Run();
  });
}

LiveMoveStatus LiveMoveSource::Impl::Status() {
  base::MutexLock lock(mu_);
  last_poll_ns_ = base::MonotonicNanos();
  LiveMoveStatus s = status_;
  if (pool_) {
    s.streams = pool_->Reports();
    s.wire_bytes = 0;
    for (const StreamReport& r : s.streams) s.wire_bytes += r.bytes_sent;
  }
  if (!IsTerminal(s.phase)) s.total_ms = MsSince(start_ns_);
  return s;
}

void LiveMoveSource::Impl::Abort(const std::string& reason) {
  {
    base::MutexLock lock(mu_);
    if (abort_reason_.empty()) abort_reason_ = reason;
  }
  // After DeviceState the cancel fd is no longer polled: only the
  // destination decides, so this only waits (in Join) for the resolution.
  // An eventfd write fails only when its counter would overflow (2^64 - 2
  // signals), and then the fd is readable anyway: nothing to handle.
  (void)cancel_.Signal();
}

void LiveMoveSource::Impl::Join() {
  base::MutexLock lock(join_mu_);
  if (thread_.joinable()) thread_.join();
}

void LiveMoveSource::Impl::SetPhase(LiveMovePhase phase) {
  base::MutexLock lock(mu_);
  status_.phase = phase;
}

void LiveMoveSource::Impl::Finish(LiveMovePhase phase, const std::optional<base::Error>& error) {
  {
    base::MutexLock lock(mu_);
    status_.phase = phase;
    status_.total_ms = MsSince(start_ns_);
    status_.throttle_percent = throttle_;
    if (pool_) {
      status_.streams = pool_->Reports();
      status_.wire_bytes = pool_->wire_bytes();
    }
    if (error) {
      status_.error_code = std::string(base::CodeName(error->code()));
      status_.error = error->message();
    }
  }
  if (error)
    base::LogWarning("live move " + req_.prepare.migration_id + " " + std::string(ToString(phase)) +
                     ": " + error->ToString());
  else
    base::LogInfo("live move " + req_.prepare.migration_id + " " + std::string(ToString(phase)));
  running_ = false;
  if (opt_.notify_fd >= 0) {
    uint64_t one = 1;
    (void)!::write(opt_.notify_fd, &one, sizeof one);
  }
}

void LiveMoveSource::Impl::Run() {
  base::Status st = Connect();
  if (st) st = CopyLayers();
  if (st) st = StartMirrors();
  std::vector<uint64_t> pending;
  if (st) st = Precopy(pending);
  bool state_sent = false;
  if (st) {
    st = SendSwitchover(pending);
    state_sent = st.has_value();
  }
  if (!state_sent) {
    FailBeforeState(st.error());
    return;
  }
  Resolve();
}

// ---- Liveness ---------------------------------------------------------------

base::Status LiveMoveSource::Impl::CheckAlive(bool lease) {
  {
    base::MutexLock lock(mu_);
    if (overdue_error_) return *overdue_error_;
    if (!abort_reason_.empty())
      return base::Error(base::Code::kCancelled, "move cancelled: " + abort_reason_);
    if (auto overdue = OverdueLocked(lease)) return *overdue;
    if (dest_error_) return *dest_error_;
    if (reader_error_) return reader_error_->Wrap("the destination " + peer_ + " ended the move");
    if (got_committed_)
      return base::Error(base::Code::kDataLoss,
                         "destination " + peer_ + " committed before the switchover");
  }
  if (auto e = pool_ ? pool_->error() : std::nullopt) return StreamsFailure(*e);
  return base::Ok();
}

std::optional<base::Error> LiveMoveSource::Impl::OverdueLocked(bool lease) const {
  if (state_out_) return std::nullopt;  // only the destination decides now
  if (lease && opt_.lease_ms > 0 && MsSince(last_poll_ns_) > opt_.lease_ms)
    return base::Error(base::Code::kAborted, "ferryd stopped polling (no status request for " +
                                                 std::to_string(opt_.lease_ms) +
                                                 " ms): move abandoned");
  if (precopy_start_ns_ != 0 &&
      base::MonotonicNanos() - precopy_start_ns_ > uint64_t(req_.time_limit_s) * 1000000000ull) {
    const LiveMoveStatus& s = status_;
    NotConvergedFacts f;
    f.time_limit_s = req_.time_limit_s;
    f.switching_over = s.phase == LiveMovePhase::kSwitchover;
    f.round = s.round;
    f.wire_bytes = pool_ ? pool_->wire_bytes() : 0;
    f.memory_remaining = s.memory_remaining;
    f.disk_remaining = s.disk_remaining;
    f.disk_queued = pool_ ? pool_->queued_bytes(Lane::kDisk) : 0;
    f.dirty_bytes_per_second = s.dirty_bytes_per_second;
    f.bytes_per_second = s.bytes_per_second;
    return NotConverged(f);
  }
  return std::nullopt;
}

void LiveMoveSource::Impl::Watch() {
  constexpr int kWatchMs = 100;
  base::MutexLock lock(mu_);
  while (!watchdog_stop_ && !state_out_ && running_.load()) {
    watchdog_cv_.WaitFor(mu_, std::chrono::milliseconds(kWatchMs));
    if (watchdog_stop_ || state_out_ || overdue_error_ || !running_.load()) continue;
    // The lease holds until the switchover: a ferryd that dies after it
    // learns the outcome from the worker's exit record or the destination.
    const bool lease = status_.phase != LiveMovePhase::kSwitchover;
    if (auto overdue = OverdueLocked(lease)) {
      overdue_error_ = overdue;
      base::LogWarning("live move " + req_.prepare.migration_id + ": " + overdue->message());
      // eventfd: fails only at counter overflow, readable then anyway.
      (void)cancel_.Signal();
    }
  }
}

void LiveMoveSource::Impl::StopWatchdog() {
  {
    base::MutexLock lock(mu_);
    watchdog_stop_ = true;
  }
  watchdog_cv_.NotifyAll();
  if (watchdog_.joinable()) watchdog_.join();
}

// ---------------------------------------------------------------------------

LiveMoveSource::LiveMoveSource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LiveMoveSource::~LiveMoveSource() = default;
LiveMoveStatus LiveMoveSource::Status() { return impl_->Status(); }

void LiveMoveSource::Abort(const std::string& reason) {
  impl_->Abort(reason);
  impl_->Join();
}

bool LiveMoveSource::committed() const { return impl_->committed(); }
bool LiveMoveSource::running() const { return impl_->running(); }

}  // namespace appliance
