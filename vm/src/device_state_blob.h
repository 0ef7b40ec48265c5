// The device-state blob of a live move (vm/STATE_FORMAT.md, "Device-state
// blob"): everything a state file holds except guest memory — definition,
// machine/clock, vCPUs, serial port, devices — in the state-file container,
// built in memory and marked with its own magic ("FRRYDEVS") so a blob and a
// state file are never taken for each other. Guest memory travels separately
// (the move copies it page by page before the source pauses).
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"
#include "machine_state.h"

namespace vm {

base::Result<std::string> EncodeDeviceState(const MachineSnapshot& snapshot);
// Verifies the whole blob (header, trailer, every section CRC and field)
// before returning anything; any defect is kDataLoss naming what was wrong, a
// blob of another format version kFailedPrecondition. Refuses more than
// kMaxDeviceStateBytes (vm/machine.h) without looking further.
base::Result<MachineSnapshot> DecodeDeviceState(std::string_view blob);

}  // namespace vm
