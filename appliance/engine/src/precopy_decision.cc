#include "precopy_decision.h"

#include <cstdio>

namespace appliance {

std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

base::Error NotConverged(const NotConvergedFacts& f) {
  std::string where;
  if (f.switching_over)
    where = "; the switchover did not finish (the vm stays here)";
  else if (f.round <= 1)
    where = "; the first pass over memory did not finish (" + Fixed(Mib(double(f.wire_bytes))) +
            " MiB sent in all)";
  else
    where = "; after round " + std::to_string(f.round) + ": " +
            Fixed(Mib(double(f.memory_remaining))) + " MiB of memory dirty, " +
            Fixed(Mib(double(f.disk_remaining))) + " MiB of disk not copied yet, " +
            Fixed(Mib(double(f.disk_queued))) + " MiB of disk writes waiting to be sent";
  return base::Error(base::Code::kDeadlineExceeded,
                     "did not converge within " + std::to_string(f.time_limit_s) +
                         " s: guest dirties " + Fixed(Mib(f.dirty_bytes_per_second)) +
                         " MiB/s, link carries " + Fixed(Mib(f.bytes_per_second)) + " MiB/s" +
                         where);
}

PrecopyDecision DecidePrecopy(const ConvergenceModel& model, const PrecopyRoundFacts& f,
                              const PrecopyTrend& trend) {
  PrecopyDecision d;
  const uint64_t memory_left = f.dirty_pages * kPageBytes;
  d.predicted_ms = model.PredictMs(memory_left + f.disk_left);
  d.throttle = f.throttle;
  d.trend = trend;
  if (f.elapsed_ns > uint64_t(f.time_limit_s) * 1000000000ull) {
    d.action = PrecopyAction::kGiveUp;
    d.error =
        NotConverged({f.time_limit_s, false, f.round, f.wire_bytes, memory_left, f.disk_remaining,
                      f.disk_queued, model.dirty_rate(), model.bandwidth()});
    return d;
  }
  if (f.mirrors_ready && d.predicted_ms >= 0 && d.predicted_ms <= f.budget_ms) {
    d.action = PrecopyAction::kSwitchOver;
    d.reason = "switching over after round " + std::to_string(f.round) + ", predicted pause " +
               Fixed(d.predicted_ms) + " ms (" + std::to_string(f.dirty_pages) + " dirty pages, " +
               std::to_string(f.disk_left) + " disk bytes)";
    return d;
  }
  // What the vCPUs can be blamed for: while a mirror still catches up,
  // only the dirty memory (the bulk copy is not their fault); once every
  // mirror is ready, memory and the disk writes waiting to be sent (a
  // guest writing faster than the link keeps the lanes full, and slowing
  // its vCPUs slows its writes too).
  const uint64_t judged_disk = f.mirrors_ready ? f.disk_left : 0;
  const uint64_t judged = memory_left + judged_disk;
  // A new measure (the mirrors became ready, or stopped being): no trend yet.
  const uint64_t previous = f.mirrors_ready != trend.was_ready ? UINT64_MAX : trend.previous_left;
  const bool fits = model.PredictMs(judged) <= f.budget_ms;
  const int next =
      fits ? f.throttle : ConvergenceModel::NextThrottle(f.round, previous, judged, f.throttle);
  d.trend = {judged, f.mirrors_ready};
  if (next == f.throttle) return d;
  d.action = PrecopyAction::kThrottle;
  d.throttle = next;
  d.reason = "auto-converge throttle " + std::to_string(next) + "% (round " +
             std::to_string(f.round) + ": " + std::to_string(f.dirty_pages) + " dirty pages, " +
             std::to_string(judged_disk) + " disk bytes waiting)";
  return d;
}

}  // namespace appliance
