#include "daemon/worker_exit.h"

namespace appliance {

RuntimeRecord RuntimeAfterWorkerExit(const RuntimeRecord& before, const WorkerExitRecord* record,
                                     const ProcessExit& exit, int64_t now_unix_ms) {
  RuntimeRecord after = before;
  after.worker_pid = 0;
  after.control_socket.clear();
  after.changed_unix_ms = now_unix_ms;
  after.last_error.clear();
  // A worker killed by a signal cannot have written a record for this exit,
  // whatever the file says; the status is the stronger evidence.
  bool trust_record = record != nullptr && !(exit.known && exit.signaled);
  if (trust_record && record->state == "powered-off") {
    after.state = VmState::kPoweredOff;
  } else if (trust_record && record->state == "stopped") {
    after.state = VmState::kStopped;
  } else if (trust_record && record->state == "saved" && !record->saved_path.empty()) {
    after.state = VmState::kSaved;
    after.saved_state = record->saved_path;
  } else if (trust_record && record->state == "failed") {
    after.state = VmState::kCrashed;
    after.last_error =
        "vm failed: " + (record->message.empty() ? "no reason given" : record->message);
  } else {
    after.state = VmState::kCrashed;
    after.last_error = "worker " + exit.Describe();
    if (trust_record && !record->message.empty()) after.last_error += ": " + record->message;
  }
  return after;
}

}  // namespace appliance
