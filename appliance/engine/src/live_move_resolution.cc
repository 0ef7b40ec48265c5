// LiveMoveSource::Impl, after DeviceState went out: waiting for the
// destination's Committed, and without it settling the outcome through
// MoveResolver (move_resolver.h), which asks the destination ferryd.
#include "live_move_source_impl.h"

#include "base/fd.h"
#include "base/log.h"
#include "move_resolver.h"

namespace appliance {
namespace {

constexpr int kCommitTimeoutMs = 60000;
constexpr int kAskTimeoutMs = 5000;

}  // namespace

void LiveMoveSource::Impl::FinishCommitted() {
  {
    base::MutexLock lock(mu_);
    status_.downtime_ms = MsSince(pause_ns_);
  }
  committed_ = true;
  // The vCPUs never run here again, so no guest write can reach the disks;
  // but shutting the machine down flushes them through the tracking disks,
  // which would wait for ever while their I/O is paused.
  ResumeDiskIo();
  if (pool_) pool_->Stop();
  for (size_t i = 0; pool_ && i < pool_->size(); ++i) pool_->stream(i).Shutdown();
  if (reader_.joinable()) reader_.join();
  Finish(LiveMovePhase::kCompleted, std::nullopt);
}

void LiveMoveSource::Impl::Resolve() {
  SetPhase(LiveMovePhase::kResolving);
  // The mirrors converged before the state went out. Dropping them now
  // means no reference to the tracking disks outlives the decision (the
  // worker shuts the machine, and its disks, down once committed). Their
  // results are of no use any more: the state is out either way.
  for (auto& j : jobs_) (void)j->Wait();
  jobs_.clear();
  sinks_.clear();
  // A timeout is no error here: what the reader recorded (or did not) is
  // read below.
  (void)base::WaitReadable(reader_done_.fd(), -1, kCommitTimeoutMs);

  std::optional<PeerDestinationAsker> ferryd;
  if (req_.control_port != 0) {
    PeerEndpoint control;
    control.host = req_.control_host;
    control.port = req_.control_port;
    control.source_host = req_.source_host;
    control.tls = tls_;
    if (req_.tls) control.expected_fingerprint = req_.tls->peer_fingerprint;
    ferryd.emplace(std::move(control), kAskTimeoutMs);
  }
  MoveResolver::Options ro;
  ro.migration_id = req_.prepare.migration_id;
  ro.peer = peer_;
  ro.commit_timeout_ms = kCommitTimeoutMs;
  ro.retry_ms = opt_.resolve_retry_ms;
  MoveResolver resolver(std::move(ro), ferryd ? &*ferryd : nullptr);

  StreamVerdict stream;
  {
    base::MutexLock lock(mu_);
    stream = {got_committed_, dest_error_, reader_error_};
  }
  const std::optional<base::Error> cause = resolver.WhyNotCommitted(stream);
  if (!cause) {
    FinishCommitted();
    return;
  }
  base::LogWarning("live move " + req_.prepare.migration_id +
                   ": after the device state: " + cause->ToString());
  pool_->Stop();
  for (size_t i = 0; i < pool_->size(); ++i) pool_->stream(i).Shutdown();
  if (reader_.joinable()) reader_.join();

  // Read again now the reader has ended: an error frame that came after the
  // wait is still the destination's own verdict.
  const Resolution r = resolver.Settle(*cause, DestinationError().has_value());
  switch (r.outcome) {
    case MoveOutcome::kCommitted: FinishCommitted(); return;
    case MoveOutcome::kAborted:
      ResumeHere();
      Finish(LiveMovePhase::kFailed, r.error);
      return;
    case MoveOutcome::kInDoubt:
      KeepOnlyVcpusPaused();
      Finish(LiveMovePhase::kInDoubt, r.error);
      return;
  }
}

}  // namespace appliance
