// Auto-converge: SetThrottle keeps the vCPUs out of the guest for the given
// share of each 10 ms period. Measured with the memory guest dirtying pages
// as fast as it can: at 80% it dirties clearly fewer pages per second of
// guest time than at 0% (measured in the same test, so host load cancels
// out), the throttle survives a pause, and at 0% the rate recovers.
#include <gtest/gtest.h>

#include <chrono>
#include <iostream>

#include "live_move_fixture.h"

namespace vm {
namespace {

using testing::ParseBeats;

class ThrottleTest : public testing::GuestProgramTest {
 protected:
  // Pages dirtied per ms of guest time over about `window` of wall time,
  // from the guest's own heartbeats.
  double DirtyRate(const MachineOptions& o, std::chrono::milliseconds window) {
    // Start from a heartbeat printed after the caller's change took effect.
    size_t have = ParseBeats(Console(o), "HB ").size();
    EXPECT_TRUE(WaitForBeats(o, "HB ", have + 2));
    testing::Beat first = ParseBeats(Console(o), "HB ").back();
    Spin(window);
    testing::Beat last = ParseBeats(Console(o), "HB ").back();
    uint64_t ms = last.at("t") - first.at("t");
    EXPECT_GT(ms, 0u);
    return ms ? static_cast<double>(last.at("dirtied") - first.at("dirtied")) /
                    static_cast<double>(ms)
              : 0;
  }
};

TEST_F(ThrottleTest, ThrottleSlowsTheGuestAndReleasesIt) {
  FERRY_SKIP_WITHOUT_KVM();
  MachineOptions o = GuestOptions("memory-guest.bin", "ws_mib=8 hb_ms=50", 1, 32ull << 20, "a.log");
  auto m = Machine::Create(o);
  ASSERT_TRUE(m) << m.error().ToString();
  Machine& vm = **m;
  for (int bad : {-1, 100, 1000}) {
    auto st = vm.SetThrottle(bad);
    ASSERT_FALSE(st) << bad;
    EXPECT_EQ(st.error().code(), base::Code::kInvalidArgument) << st.error().ToString();
  }
  EXPECT_EQ(vm.throttle(), 0);
  ASSERT_TRUE(vm.Start());
  ASSERT_TRUE(WaitForBeats(o, "HB ", 3));
  // Long enough that a burst of host load in one window does not decide
  // the comparison.
  constexpr std::chrono::milliseconds kWindow{1500};

  double free_rate = DirtyRate(o, kWindow);
  ASSERT_TRUE(vm.SetThrottle(80));
  EXPECT_EQ(vm.throttle(), 80);
  ASSERT_TRUE(vm.Pause());  // survives a pause
  ASSERT_TRUE(vm.Resume());
  EXPECT_EQ(vm.throttle(), 80);
  double throttled_rate = DirtyRate(o, kWindow);
  ASSERT_TRUE(vm.SetThrottle(0));
  double released_rate = DirtyRate(o, kWindow);

  std::cout << "[ note ] pages dirtied per ms: " << free_rate << " free, " << throttled_rate
            << " at 80%, " << released_rate << " released\n";
  ASSERT_GT(free_rate, 0);
  EXPECT_LT(throttled_rate, 0.6 * free_rate) << "throttle 80 should cut the rate to about a fifth";
  EXPECT_LT(throttled_rate, 0.6 * released_rate) << "the rate should recover at throttle 0";
  vm.Shutdown();
  testing::CheckBeats(ParseBeats(Console(o), "HB "), 20);
}

}  // namespace
}  // namespace vm
