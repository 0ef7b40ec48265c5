// DecidePrecopy, branch by branch: give up, switch over, keep copying,
// throttle; and the "did not converge" message both callers share.
#include "precopy_decision.h"

#include <gtest/gtest.h>

namespace appliance {
namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kPagesPerMiB = kMiB / kPageBytes;

// A link held at exactly 1 MiB/s: a MiB left predicts 1000 ms + the 20 ms
// switchover cost.
ConvergenceModel OneMibLink() { return ConvergenceModel(kMiB); }

PrecopyRoundFacts Round(uint32_t round, uint64_t dirty_pages, bool ready) {
  PrecopyRoundFacts f;
  f.round = round;
  f.dirty_pages = dirty_pages;
  f.mirrors_ready = ready;
  f.budget_ms = 300;
  f.time_limit_s = 10;
  f.elapsed_ns = 1000000000ull;  // 1 s of 10
  return f;
}

PrecopyTrend Trend(uint64_t previous_left, bool was_ready) { return {previous_left, was_ready}; }

TEST(PrecopyDecision, SwitchesOverWhenReadyAndThePauseFits) {
  PrecopyRoundFacts f = Round(3, 0, true);
  f.disk_left = 0;
  const PrecopyDecision d = DecidePrecopy(OneMibLink(), f, PrecopyTrend{});
  EXPECT_EQ(d.action, PrecopyAction::kSwitchOver);
  EXPECT_DOUBLE_EQ(d.predicted_ms, 20);
  EXPECT_EQ(d.reason,
            "switching over after round 3, predicted pause 20.0 ms (0 dirty pages, 0 disk bytes)");
  EXPECT_FALSE(d.error);
}

TEST(PrecopyDecision, TheBudgetIsInclusive) {
  PrecopyRoundFacts f = Round(2, kPagesPerMiB / 4, true);  // 250 ms + 20
  f.budget_ms = 270;
  EXPECT_EQ(DecidePrecopy(OneMibLink(), f, PrecopyTrend{}).action, PrecopyAction::kSwitchOver);
  f.budget_ms = 269.9;
  EXPECT_NE(DecidePrecopy(OneMibLink(), f, PrecopyTrend{}).action, PrecopyAction::kSwitchOver);
}

TEST(PrecopyDecision, DiskLeftCountsInThePrediction) {
  PrecopyRoundFacts f = Round(2, 0, true);
  f.disk_left = kMiB;
  const PrecopyDecision d = DecidePrecopy(OneMibLink(), f, PrecopyTrend{});
  EXPECT_EQ(d.action, PrecopyAction::kKeepCopying);
  EXPECT_DOUBLE_EQ(d.predicted_ms, 1020);
  EXPECT_EQ(d.reason, "");
}

TEST(PrecopyDecision, NoSwitchoverBeforeTheMirrorsAreReady) {
  PrecopyRoundFacts f = Round(4, 0, false);
  const PrecopyDecision d = DecidePrecopy(OneMibLink(), f, Trend(0, false));
  EXPECT_EQ(d.action, PrecopyAction::kKeepCopying);
  EXPECT_DOUBLE_EQ(d.predicted_ms, 20);
  EXPECT_EQ(d.throttle, 0);
  EXPECT_EQ(d.trend.previous_left, 0u);
  EXPECT_FALSE(d.trend.was_ready);
}

TEST(PrecopyDecision, NoThrottleBeforeRoundThree) {
  PrecopyRoundFacts f = Round(2, kPagesPerMiB, true);
  const PrecopyDecision d = DecidePrecopy(OneMibLink(), f, Trend(kMiB, true));
  EXPECT_EQ(d.action, PrecopyAction::kKeepCopying);
  EXPECT_EQ(d.throttle, 0);
  EXPECT_EQ(d.trend.previous_left, kMiB);
  EXPECT_TRUE(d.trend.was_ready);
}

TEST(PrecopyDecision, ThrottlesWhenTheRoundsDoNotShrink) {
  PrecopyRoundFacts f = Round(3, kPagesPerMiB, true);
  f.disk_left = 4096;
  const PrecopyDecision d = DecidePrecopy(OneMibLink(), f, Trend(kMiB + 4096, true));
  EXPECT_EQ(d.action, PrecopyAction::kThrottle);
  EXPECT_EQ(d.throttle, 20);
  EXPECT_EQ(d.reason,
            "auto-converge throttle 20% (round 3: 256 dirty pages, 4096 disk bytes waiting)");
  EXPECT_EQ(d.trend.previous_left, kMiB + 4096);
}

TEST(PrecopyDecision, TheThrottleRisesByTenUpToNinety) {
  PrecopyRoundFacts f = Round(5, kPagesPerMiB, true);
  f.throttle = 20;
  EXPECT_EQ(DecidePrecopy(OneMibLink(), f, Trend(kMiB, true)).throttle, 30);
  f.throttle = 90;
  const PrecopyDecision top = DecidePrecopy(OneMibLink(), f, Trend(kMiB, true));
  EXPECT_EQ(top.action, PrecopyAction::kKeepCopying);
  EXPECT_EQ(top.throttle, 90);
}

TEST(PrecopyDecision, ShrinkingRoundsKeepTheThrottle) {
  PrecopyRoundFacts f = Round(4, kPagesPerMiB, true);
  f.throttle = 30;
  // A quarter less than last round: converging on its own.
  const PrecopyDecision d = DecidePrecopy(OneMibLink(), f, Trend(kMiB * 4 / 3 + 1, true));
  EXPECT_EQ(d.action, PrecopyAction::kKeepCopying);
  EXPECT_EQ(d.throttle, 30);
}

TEST(PrecopyDecision, WhatFitsTheBudgetIsNeverThrottled) {
  // Not ready, so no switchover; the dirty memory alone would fit.
  PrecopyRoundFacts f = Round(6, 1, false);
  f.disk_left = 100 * kMiB;  // the bulk copy is not the vCPUs' fault
  const PrecopyDecision d = DecidePrecopy(OneMibLink(), f, Trend(0, false));
  EXPECT_EQ(d.action, PrecopyAction::kKeepCopying);
  EXPECT_EQ(d.trend.previous_left, kPageBytes);
}

TEST(PrecopyDecision, DiskWaitingCountsAgainstTheVcpusOnlyOnceReady) {
  PrecopyRoundFacts f = Round(5, 0, true);
  f.disk_left = kMiB;
  // Ready and was ready: the same measure, not shrinking -> throttle.
  PrecopyDecision d = DecidePrecopy(OneMibLink(), f, Trend(kMiB, true));
  EXPECT_EQ(d.action, PrecopyAction::kThrottle);
  EXPECT_EQ(d.reason,
            "auto-converge throttle 20% (round 5: 0 dirty pages, 1048576 disk bytes waiting)");
  // Just became ready: a new measure, so no trend to judge yet.
  d = DecidePrecopy(OneMibLink(), f, Trend(kMiB, false));
  EXPECT_EQ(d.action, PrecopyAction::kKeepCopying);
  EXPECT_EQ(d.trend.previous_left, kMiB);
  EXPECT_TRUE(d.trend.was_ready);
}

TEST(PrecopyDecision, GivesUpPastTheTimeLimit) {
  PrecopyRoundFacts f = Round(4, 2 * kPagesPerMiB, true);
  f.elapsed_ns = 10000000001ull;
  f.disk_remaining = 3 * kMiB;
  f.disk_queued = kMiB / 2;
  const PrecopyDecision d = DecidePrecopy(OneMibLink(), f, PrecopyTrend{});
  ASSERT_EQ(d.action, PrecopyAction::kGiveUp);
  ASSERT_TRUE(d.error);
  EXPECT_EQ(d.error->code(), base::Code::kDeadlineExceeded);
  EXPECT_EQ(
      d.error->message(),
      "did not converge within 10 s: guest dirties 0.0 MiB/s, link carries 1.0 MiB/s; after round "
      "4: 2.0 MiB "
      "of memory dirty, 3.0 MiB of disk not copied yet, 0.5 MiB of disk writes waiting to be sent");
}

TEST(PrecopyDecision, GivingUpComesBeforeAFittingSwitchover) {
  PrecopyRoundFacts f = Round(3, 0, true);
  f.elapsed_ns = 11000000000ull;
  EXPECT_EQ(DecidePrecopy(OneMibLink(), f, PrecopyTrend{}).action, PrecopyAction::kGiveUp);
  f.elapsed_ns = 10000000000ull;  // exactly the limit: not over it yet
  EXPECT_EQ(DecidePrecopy(OneMibLink(), f, PrecopyTrend{}).action, PrecopyAction::kSwitchOver);
}

TEST(PrecopyDecision, NotConvergedSaysWhereItStopped) {
  NotConvergedFacts f;
  f.time_limit_s = 5;
  f.round = 1;
  f.wire_bytes = 3 * kMiB;
  f.dirty_bytes_per_second = 2 * double(kMiB);
  f.bytes_per_second = 8 * double(kMiB);
  EXPECT_EQ(NotConverged(f).message(),
            "did not converge within 5 s: guest dirties 2.0 MiB/s, link carries 8.0 MiB/s; the "
            "first pass over "
            "memory did not finish (3.0 MiB sent in all)");
  f.switching_over = true;
  EXPECT_EQ(NotConverged(f).message(),
            "did not converge within 5 s: guest dirties 2.0 MiB/s, link carries 8.0 MiB/s; the "
            "switchover did not "
            "finish (the vm stays here)");
}

}  // namespace
}  // namespace appliance
