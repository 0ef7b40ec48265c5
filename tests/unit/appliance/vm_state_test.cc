#include "daemon/vm_state.h"

#include <gtest/gtest.h>

#include <set>

namespace appliance {
namespace {

const VmState kAllStates[] = {VmState::kStopped, VmState::kRunning, VmState::kPaused,
                              VmState::kSaved,   VmState::kCrashed, VmState::kPoweredOff};
const VmAction kAllActions[] = {VmAction::kStart,  VmAction::kStop, VmAction::kPause,
                                VmAction::kResume, VmAction::kSave, VmAction::kRestore,
                                VmAction::kDelete};

TEST(VmStateTest, NamesRoundTrip) {
  for (VmState s : kAllStates) {
    auto parsed = ParseVmState(ToString(s));
    ASSERT_TRUE(parsed.has_value()) << ToString(s);
    EXPECT_EQ(*parsed, s);
  }
  for (VmAction a : kAllActions) {
    auto parsed = ParseVmAction(ToString(a));
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(*parsed, a);
  }
  EXPECT_EQ(ParseVmState("Running").error().code(), base::Code::kInvalidArgument);
  EXPECT_FALSE(ParseVmAction("reboot").has_value());
}

// The whole transition table, spelled out: a change to CheckAction must
// change this test.
TEST(VmStateTest, TransitionTable) {
  using S = VmState;
  const std::map<VmAction, std::set<VmState>> allowed = {
      {VmAction::kStart, {S::kStopped, S::kCrashed, S::kPoweredOff}},
      {VmAction::kStop, {S::kRunning, S::kPaused, S::kSaved, S::kCrashed, S::kPoweredOff}},
      {VmAction::kPause, {S::kRunning}},
      {VmAction::kResume, {S::kPaused}},
      {VmAction::kSave, {S::kRunning, S::kPaused}},
      {VmAction::kRestore, {S::kStopped, S::kSaved, S::kCrashed, S::kPoweredOff}},
      {VmAction::kDelete, {S::kStopped, S::kSaved, S::kCrashed, S::kPoweredOff}},
  };
  for (VmAction a : kAllActions) {
    for (VmState s : kAllStates) {
      base::Status st = CheckAction("web1", s, a);
      bool expect = allowed.at(a).count(s) != 0;
      EXPECT_EQ(st.has_value(), expect) << ToString(a) << " in " << ToString(s);
      if (!st) {
        EXPECT_EQ(st.error().code(), base::Code::kFailedPrecondition);
        EXPECT_NE(st.error().message().find("web1"), std::string::npos);
        EXPECT_NE(st.error().message().find(std::string(ToString(s))), std::string::npos);
      }
    }
  }
}

TEST(VmStateTest, SavedVmCannotStartAndSaysWhatToDo) {
  base::Status st = CheckAction("db", VmState::kSaved, VmAction::kStart);
  ASSERT_FALSE(st.has_value());
  EXPECT_NE(st.error().message().find("restore"), std::string::npos) << st.error().message();
}

TEST(VmStateTest, StateAfterAndHasWorker) {
  EXPECT_EQ(StateAfter(VmAction::kStart), VmState::kRunning);
  EXPECT_EQ(StateAfter(VmAction::kRestore), VmState::kRunning);
  EXPECT_EQ(StateAfter(VmAction::kPause), VmState::kPaused);
  EXPECT_EQ(StateAfter(VmAction::kResume), VmState::kRunning);
  EXPECT_EQ(StateAfter(VmAction::kSave), VmState::kSaved);
  EXPECT_EQ(StateAfter(VmAction::kStop), VmState::kStopped);
  for (VmState s : kAllStates)
    EXPECT_EQ(HasWorker(s), s == VmState::kRunning || s == VmState::kPaused);
}

}  // namespace
}  // namespace appliance
