// The pre-copy loop's decision after each round (docs/live_move.md "Memory
// pre-copy"): keep copying, throttle the guest, switch over, or give up.
// Pure: the loop measures (harvest, mirrors, lanes, clock) and acts (log,
// SetThrottle, switchover, fail); this only decides, so every branch is
// testable without a guest or a stream (tests/unit/appliance/
// precopy_decision_test.cc).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "base/result.h"
#include "memory_precopy.h"

namespace appliance {

// For messages: bytes in MiB, a number with `digits` decimals.
inline double Mib(double bytes) { return bytes / (1024.0 * 1024.0); }
std::string Fixed(double v, int digits = 1);

// What the loop measured in one round, after the harvest.
struct PrecopyRoundFacts {
  uint32_t round = 0;          // rounds sent so far (1: the full pass)
  uint64_t dirty_pages = 0;    // harvested this round
  uint64_t disk_left = 0;      // mirror bytes not copied + disk lane bytes waiting
  bool mirrors_ready = false;  // every mirror has copied its disk once
  double budget_ms = 0;        // the downtime budget
  int throttle = 0;            // the auto-converge throttle in force, %
  uint64_t elapsed_ns = 0;     // since the pre-copy began
  uint32_t time_limit_s = 0;   // the move's limit for converging
  // Only for the give-up message.
  uint64_t wire_bytes = 0;      // sent on all streams so far
  uint64_t disk_remaining = 0;  // disk not copied yet (layers + mirrors)
  uint64_t disk_queued = 0;     // disk writes waiting in the lanes
};

// What one round's decision hands to the next.
struct PrecopyTrend {
  uint64_t previous_left = UINT64_MAX;  // what the throttle judged last round
  bool was_ready = false;               // the mirrors were ready last round
};

enum class PrecopyAction { kKeepCopying = 1, kThrottle = 2, kSwitchOver = 3, kGiveUp = 4 };

struct PrecopyDecision {
  PrecopyAction action = PrecopyAction::kKeepCopying;
  // The pause if the switchover started now (memory and disk left); the
  // model's -1 when it cannot tell.
  double predicted_ms = 0;
  int throttle = 0;                  // for the next round (kThrottle: a new value)
  std::string reason;                // what the loop logs for kSwitchOver and kThrottle
  std::optional<base::Error> error;  // kGiveUp: the error that ends the move
  PrecopyTrend trend;                // for the next round
};

// The order: past the time limit, give up; mirrors ready and the predicted
// pause within the budget, switch over; otherwise keep copying, with the
// throttle raised (ConvergenceModel::NextThrottle) when what the vCPUs can
// be blamed for does not fit the budget and does not shrink.
PrecopyDecision DecidePrecopy(const ConvergenceModel& model, const PrecopyRoundFacts& facts,
                              const PrecopyTrend& trend);

// The time limit's error, kDeadlineExceeded "did not converge within N s:
// ...", from the pre-copy loop (DecidePrecopy) or the watchdog.
struct NotConvergedFacts {
  uint32_t time_limit_s = 0;
  bool switching_over = false;  // the limit struck inside the switchover
  uint32_t round = 0;
  uint64_t wire_bytes = 0;
  uint64_t memory_remaining = 0;
  uint64_t disk_remaining = 0;
  uint64_t disk_queued = 0;
  double dirty_bytes_per_second = 0;
  double bytes_per_second = 0;
};
base::Error NotConverged(const NotConvergedFacts& facts);

}  // namespace appliance
