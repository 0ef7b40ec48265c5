// The life-cycle of a VM as ferryd records it in runtime.json, and which
// control actions each state allows. One table (CheckAction) decides, so the
// API, the service and the tests agree.
//
//   stopped/crashed/powered-off --start--> running <--pause/resume--> paused
//   running/paused --save--> saved --restore--> running
//   running/paused --stop--> stopped          saved --stop--> stopped (discards the state)
//   running/paused --(worker dies)--> crashed    running --(guest powers off)--> powered-off
#pragma once

#include <string_view>

#include "base/result.h"

namespace appliance {

// No zero value: a zeroed record is never a valid state.
enum class VmState {
  kStopped = 1,
  kRunning = 2,
  kPaused = 3,
  kSaved = 4,       // a state file holds the VM; no worker
  kCrashed = 5,     // the worker died or the VM failed; last_error says why
  kPoweredOff = 6,  // the guest powered itself off
};

enum class VmAction {
  kStart = 1,
  kStop = 2,
  kPause = 3,
  kResume = 4,
  kSave = 5,
  kRestore = 6,
  kDelete = 7,
};

std::string_view ToString(VmState state);
base::Result<VmState> ParseVmState(std::string_view text);
std::string_view ToString(VmAction action);
base::Result<VmAction> ParseVmAction(std::string_view text);

// True for states in which a worker process holds the VM.
bool HasWorker(VmState state);

// Ok if action is allowed in state; otherwise kFailedPrecondition with a
// message that names the VM, its state and what to do instead.
base::Status CheckAction(std::string_view vm_name, VmState state, VmAction action);

// The state a successful action leads to (for actions that change it).
VmState StateAfter(VmAction action);

}  // namespace appliance
