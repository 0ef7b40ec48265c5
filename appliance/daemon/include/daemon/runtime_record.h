// What a VM is doing, as persisted in <vm dir>/runtime.json. ferryd is the
// only writer; it reads the records back after a restart to re-attach to the
// workers that are still running.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "daemon/vm_state.h"

namespace appliance {

struct RuntimeRecord {
  VmState state = VmState::kStopped;
  int64_t worker_pid = 0;       // while running or paused
  std::string control_socket;   // the worker's control socket, while it runs
  std::string last_error;       // why the VM last crashed or failed to start
  std::string saved_state;      // the state file, while saved
  int64_t changed_unix_ms = 0;  // wall-clock time of the last state change
};

nlohmann::json ToJson(const RuntimeRecord& record);
// source names the file in error messages.
base::Result<RuntimeRecord> RuntimeFromJson(const nlohmann::json& j, std::string_view source);

std::string FormatRuntime(const RuntimeRecord& record);
base::Result<RuntimeRecord> ParseRuntime(std::string_view text, std::string_view source);

int64_t UnixMillisNow();

}  // namespace appliance
