// LiveMoveSource::Impl, the memory pre-copy (docs/live_move.md "Memory
// pre-copy"): the full pass, then rounds of dirty pages until
// DecidePrecopy (precopy_decision.h) says the switchover fits the downtime
// budget, throttling the guest's vCPUs when the rounds do not shrink.
#include "live_move_source_impl.h"

#include "base/fd.h"
#include "base/log.h"

namespace appliance {
namespace {

constexpr int kMinRoundMs = 20;  // harvesting faster only burns CPU
// The longest rest between memory rounds while a disk mirror catches up.
constexpr int kCatchUpRoundMs = 500;

}  // namespace

base::Status LiveMoveSource::Impl::Precopy(std::vector<uint64_t>& pending) {
  vm::Machine& m = *opt_.machine;
  SetPhase(LiveMovePhase::kPrecopy);
  RETURN_IF_ERROR(m.EnableDirtyLog());
  dirty_log_on_ = true;
  const double budget_ms = req_.downtime_ms > 0 ? req_.downtime_ms : kDefaultDowntimeMs;
  uint64_t harvest_ns = base::MonotonicNanos();
  // The time bound is for convergence: it starts here, after the layers,
  // whose copy takes as long as their size needs.
  {
    base::MutexLock lock(mu_);
    precopy_start_ns_ = harvest_ns;
  }
  RETURN_IF_ERROR(SendFullPass());

  uint32_t round = 1;
  PrecopyTrend trend;
  for (;;) {
    RETURN_IF_ERROR(CheckAlive(true));
    ASSIGN_OR_RETURN(std::vector<uint64_t> dirty, m.HarvestDirtyPages());
    const uint64_t now = base::MonotonicNanos();
    const uint64_t pages = CountPages(dirty);
    model_.NoteHarvest(pages, double(now - harvest_ns) / 1e9);
    harvest_ns = now;
    ASSIGN_OR_RETURN(DiskMeasure disks, MeasureDisks());

    PrecopyRoundFacts facts;
    facts.round = round;
    facts.dirty_pages = pages;
    facts.disk_left = disks.disk_left;
    facts.mirrors_ready = disks.ready;
    facts.budget_ms = budget_ms;
    facts.throttle = throttle_;
    facts.time_limit_s = req_.time_limit_s;
    {
      base::MutexLock lock(mu_);
      facts.elapsed_ns = base::MonotonicNanos() - precopy_start_ns_;
      facts.disk_remaining = status_.disk_remaining;
    }
    facts.wire_bytes = pool_->wire_bytes();
    facts.disk_queued = pool_->queued_bytes(Lane::kDisk);
    const PrecopyDecision d = DecidePrecopy(model_, facts, trend);
    NoteRound(facts, d);
    if (d.action == PrecopyAction::kGiveUp) return *d.error;
    if (d.action == PrecopyAction::kSwitchOver) {
      base::LogInfo("live move " + req_.prepare.migration_id + ": " + d.reason);
      pending = std::move(dirty);
      return base::Ok();
    }
    RETURN_IF_ERROR(ApplyThrottle(d));
    trend = d.trend;

    ++round;
    ASSIGN_OR_RETURN(const uint64_t took, SendRound(dirty, round));
    if (!disks.ready) {
      // No switchover before the mirrors are ready, so rounds meanwhile only
      // keep the dirty set from growing: a few a second do that without
      // re-sending hot pages dozens of times over a long disk copy.
      RETURN_IF_ERROR(WaitMirrorsReady(kCatchUpRoundMs));
      continue;
    }
    const int rest_ms = kMinRoundMs - int(took / 1000000);
    // The loop's CheckAlive reports an Abort that ends this wait early, so
    // the wait's own result (readable, timed out) says nothing more.
    if (rest_ms > 0) (void)base::WaitReadable(cancel_.fd(), -1, rest_ms);
  }
}

// Round 1: the full pass.
base::Status LiveMoveSource::Impl::SendFullPass() {
  vm::Machine& m = *opt_.machine;
  {
    base::MutexLock lock(mu_);
    status_.round = 1;
  }
  const uint64_t wire0 = pool_->wire_bytes(), t0 = base::MonotonicNanos();
  // Only RAM the guest ever wrote is read: scanning the rest page by page
  // would fault it in (1 GiB: seconds) just to find zeros.
  ASSIGN_OR_RETURN(std::vector<vm::Machine::MemoryRange> populated, m.PopulatedMemory());
  ASSIGN_OR_RETURN(PageSendStats full,
                   SendAllPages(m.memory_base(), m.memory_size(), populated, *pool_, cancel_.fd()));
  RETURN_IF_ERROR(pool_->Drain(Lane::kMemory, cancel_.fd(), -1));
  model_.NoteSend(pool_->wire_bytes() - wire0, double(base::MonotonicNanos() - t0) / 1e9);
  base::MutexLock lock(mu_);
  status_.memory_sent = full.bytes;
  status_.zero_pages = full.zero_pages;
  return base::Ok();
}

base::Result<LiveMoveSource::Impl::DiskMeasure> LiveMoveSource::Impl::MeasureDisks() {
  DiskMeasure out;
  for (auto& j : jobs_) {
    base::Status r = j->WaitReady(-1, 0);
    if (!r && r.error().code() != base::Code::kDeadlineExceeded) return StreamsFailure(r.error());
    if (!r) out.ready = false;
    out.disk_left += j->Progress().bytes_remaining;
  }
  // Extents the mirrors handed over but the streams have not sent yet go
  // out inside the pause too (a lane holds up to 8 MiB per stream).
  out.disk_left += pool_->queued_bytes(Lane::kDisk);
  UpdateDiskProgress();
  return out;
}

void LiveMoveSource::Impl::NoteRound(const PrecopyRoundFacts& facts, const PrecopyDecision& d) {
  const uint64_t memory_left = facts.dirty_pages * kPageBytes;
  base::MutexLock lock(mu_);
  status_.memory_remaining = memory_left;
  status_.predicted_downtime_ms = d.predicted_ms;
  status_.dirty_bytes_per_second = model_.dirty_rate();
  status_.bytes_per_second = model_.bandwidth();
  const double bw = model_.bandwidth();
  status_.eta_seconds = bw > 0 ? double(memory_left + status_.disk_remaining) / bw : -1;
  status_.throttle_percent = throttle_;
}

base::Status LiveMoveSource::Impl::ApplyThrottle(const PrecopyDecision& d) {
  if (d.action != PrecopyAction::kThrottle) return base::Ok();
  RETURN_IF_ERROR(opt_.machine->SetThrottle(d.throttle));
  base::LogInfo("live move " + req_.prepare.migration_id + ": " + d.reason);
  throttle_ = d.throttle;
  return base::Ok();
}

base::Result<uint64_t> LiveMoveSource::Impl::SendRound(const std::vector<uint64_t>& dirty,
                                                       uint32_t round) {
  vm::Machine& m = *opt_.machine;
  const uint64_t wire0 = pool_->wire_bytes();
  const uint64_t t0 = base::MonotonicNanos();
  ASSIGN_OR_RETURN(PageSendStats sent,
                   SendDirtyPages(m.memory_base(), m.memory_size(), dirty, *pool_, cancel_.fd()));
  RETURN_IF_ERROR(pool_->Drain(Lane::kMemory, cancel_.fd(), -1));
  const uint64_t took = base::MonotonicNanos() - t0;
  model_.NoteSend(pool_->wire_bytes() - wire0, double(took) / 1e9);
  base::MutexLock lock(mu_);
  status_.round = round;
  status_.memory_sent += sent.bytes;
  status_.zero_pages += sent.zero_pages;
  return took;
}

}  // namespace appliance
