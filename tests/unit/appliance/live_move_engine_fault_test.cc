// Live moves that break (live_move_engine_fixture.h): streams cut, corrupted
// or truncated through a FaultRelay, a dirtier too fast to converge, a lost
// lease and an abort. Each must fail the move and leave the source running.
#include "live_move_engine_fixture.h"

namespace appliance::engine_test {
namespace {

MoveSetup FaultSetup() {
  MoveSetup s;
  s.use_relay = true;
  s.downtime_ms = 1;
  return s;
}

TEST_F(LiveMoveEngineTest, CutDuringPrecopyResumesTheSource) {
  FERRY_SKIP_WITHOUT_KVM();
  StartMove(Definition("memory-guest.bin", "ws_mib=16 rate=20000 hb_ms=50", 32ull << 20),
            FaultSetup());
  if (HasFatalFailure()) return;
  bool cut = false;
  LiveMoveStatus s = WaitSource([&](const LiveMoveStatus& st) {
    if (!cut && st.phase == LiveMovePhase::kPrecopy && st.round >= 3) {
      relay_->CutAll();
      cut = true;
    }
  });
  Print("cut", s);
  EXPECT_TRUE(cut);
  EXPECT_NE(s.error.find("127.0.0.1"), std::string::npos) << s.error;
  ExpectFailedCleanly(s);
}

TEST_F(LiveMoveEngineTest, FlippedByteFailsTheMoveAndResumesTheSource) {
  FERRY_SKIP_WITHOUT_KVM();
  MoveSetup setup = FaultSetup();
  StartMove(Definition("memory-guest.bin", "ws_mib=16 rate=20000 hb_ms=50", 32ull << 20), setup);
  if (HasFatalFailure()) return;
  relay_->FlipByte(1, 200000);  // inside stream 1's full pass
  LiveMoveStatus s = WaitSource();
  Print("flipped byte", s);
  EXPECT_NE(s.error.find("destination"), std::string::npos) << s.error;
  EXPECT_NE(s.error.find("stream 1"), std::string::npos) << s.error;
  ExpectFailedCleanly(s);
}

TEST_F(LiveMoveEngineTest, TruncatedStreamFailsTheMoveAndResumesTheSource) {
  FERRY_SKIP_WITHOUT_KVM();
  StartMove(Definition("memory-guest.bin", "ws_mib=16 rate=20000 hb_ms=50", 32ull << 20),
            FaultSetup());
  if (HasFatalFailure()) return;
  relay_->TruncateAfter(2, 300000);
  LiveMoveStatus s = WaitSource();
  Print("truncated", s);
  EXPECT_NE(s.error.find("stream"), std::string::npos) << s.error;
  ExpectFailedCleanly(s);
}

// The guest dirties its 16 MiB as fast as it can; the link is held to
// 24 MiB/s with a 30 ms budget. Auto-converge must throttle; the move then
// either fits or hits the time limit, and either way ends cleanly.
TEST_F(LiveMoveEngineTest, FastDirtierIsThrottledOrTimesOutCleanly) {
  FERRY_SKIP_WITHOUT_KVM();
  MoveSetup setup;
  setup.bandwidth_limit = 24ull << 20;
  setup.downtime_ms = 30;
  setup.time_limit_s = 6;
  StartMove(Definition("memory-guest.bin", "ws_mib=16 rate=0 hb_ms=50", 32ull << 20), setup);
  if (HasFatalFailure()) return;
  int max_throttle = 0;
  LiveMoveStatus s = WaitSource([&](const LiveMoveStatus& st) {
    max_throttle = std::max(max_throttle, st.throttle_percent);
  });
  Print("fast dirtier", s);
  EXPECT_GE(max_throttle, 20) << "auto-converge never throttled";
  if (s.phase == LiveMovePhase::kCompleted) {
    EXPECT_EQ(WaitDestination(), LiveMoveDestination::Outcome::kCommitted);
    EXPECT_TRUE(WaitForLines(dst_ + "/console.log", "HB ", 1)) << "B runs the guest on";
    ASSERT_TRUE(b_->Pause().has_value());
    CheckHeartbeats(ReadText(src_ + "/console.log") + ReadText(dst_ + "/console.log"), 10);
  } else {
    EXPECT_NE(s.error.find("did not converge within 6 s"), std::string::npos) << s.error;
    ExpectFailedCleanly(s);
  }
}

// ferryd's poll is the move's lease: without it the move gives up, and the
// VM goes on at the source.
TEST_F(LiveMoveEngineTest, LostLeaseAbortsBeforeSwitchover) {
  FERRY_SKIP_WITHOUT_KVM();
  MoveSetup setup;
  setup.downtime_ms = 1;
  setup.lease_ms = 400;
  StartMove(Definition("memory-guest.bin", "ws_mib=8 rate=20000 hb_ms=50", 32ull << 20), setup);
  if (HasFatalFailure()) return;
  EXPECT_TRUE(ferry_test::WaitFor("the source to give up", std::chrono::seconds(20),
                                  [&] { return !source_->running(); }));
  LiveMoveStatus s = source_->Status();
  Print("lost lease", s);
  EXPECT_NE(s.error.find("ferryd stopped polling"), std::string::npos) << s.error;
  ExpectFailedCleanly(s);
}

// An abort request before the switchover: cancelled, the VM runs on here.
TEST_F(LiveMoveEngineTest, AbortBeforeSwitchoverResumesTheSource) {
  FERRY_SKIP_WITHOUT_KVM();
  MoveSetup setup;
  setup.downtime_ms = 1;
  StartMove(Definition("memory-guest.bin", "ws_mib=8 rate=20000 hb_ms=50", 32ull << 20), setup);
  if (HasFatalFailure()) return;
  WaitSource([&](const LiveMoveStatus& st) {
    if (st.phase == LiveMovePhase::kPrecopy && st.round >= 2) source_->Abort("operator said no");
  });
  LiveMoveStatus s = source_->Status();
  Print("aborted", s);
  EXPECT_EQ(s.error_code, "cancelled");
  EXPECT_NE(s.error.find("operator said no"), std::string::npos) << s.error;
  ExpectFailedCleanly(s);
}

}  // namespace
}  // namespace appliance::engine_test
