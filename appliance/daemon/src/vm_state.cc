#include "daemon/vm_state.h"

#include <string>

namespace appliance {

std::string_view ToString(VmState state) {
  switch (state) {
    case VmState::kStopped: return "stopped";
    case VmState::kRunning: return "running";
    case VmState::kPaused: return "paused";
    case VmState::kSaved: return "saved";
    case VmState::kCrashed: return "crashed";
    case VmState::kPoweredOff: return "powered-off";
  }
  return "invalid";
}

base::Result<VmState> ParseVmState(std::string_view text) {
  for (VmState s : {VmState::kStopped, VmState::kRunning, VmState::kPaused, VmState::kSaved,
                    VmState::kCrashed, VmState::kPoweredOff}) {
    if (text == ToString(s)) return s;
  }
  return base::Error(base::Code::kInvalidArgument,
                     "unknown vm state \"" + std::string(text) + "\"");
}

std::string_view ToString(VmAction action) {
  switch (action) {
    case VmAction::kStart: return "start";
    case VmAction::kStop: return "stop";
    case VmAction::kPause: return "pause";
    case VmAction::kResume: return "resume";
    case VmAction::kSave: return "save";
    case VmAction::kRestore: return "restore";
    case VmAction::kDelete: return "delete";
  }
  return "invalid";
}

base::Result<VmAction> ParseVmAction(std::string_view text) {
  for (VmAction a : {VmAction::kStart, VmAction::kStop, VmAction::kPause, VmAction::kResume,
                     VmAction::kSave, VmAction::kRestore, VmAction::kDelete}) {
    if (text == ToString(a)) return a;
  }
  return base::Error(base::Code::kInvalidArgument,
                     "unknown vm action \"" + std::string(text) + "\"");
}

bool HasWorker(VmState state) { return state == VmState::kRunning || state == VmState::kPaused; }

VmState StateAfter(VmAction action) {
  switch (action) {
    case VmAction::kStart:
    case VmAction::kResume:
    case VmAction::kRestore: return VmState::kRunning;
    case VmAction::kPause: return VmState::kPaused;
    case VmAction::kSave: return VmState::kSaved;
    case VmAction::kStop:
    case VmAction::kDelete: return VmState::kStopped;
  }
  return VmState::kStopped;
}

base::Status CheckAction(std::string_view vm_name, VmState state, VmAction action) {
  bool allowed = false;
  std::string hint;
  switch (action) {
    case VmAction::kStart:
      allowed =
          state == VmState::kStopped || state == VmState::kCrashed || state == VmState::kPoweredOff;
      if (state == VmState::kSaved) hint = "; restore it, or stop it to discard the saved state";
      break;
    case VmAction::kStop: allowed = state != VmState::kStopped; break;
    case VmAction::kPause: allowed = state == VmState::kRunning; break;
    case VmAction::kResume: allowed = state == VmState::kPaused; break;
    case VmAction::kSave: allowed = HasWorker(state); break;
    case VmAction::kRestore:
      // From a state other than saved only with an explicit state file; the
      // service checks that one exists.
      allowed = !HasWorker(state);
      break;
    case VmAction::kDelete:
      allowed = !HasWorker(state);
      if (!allowed) hint = "; stop it first";
      break;
  }
  if (allowed) return base::Ok();
  return base::Error(base::Code::kFailedPrecondition,
                     "cannot " + std::string(ToString(action)) + " vm " + std::string(vm_name) +
                         ": it is " + std::string(ToString(state)) + hint);
}

}  // namespace appliance
