// Names that become file and directory names (VMs, checkpoints) or select a
// file (guest programs): one rule each, for vm.toml, the API and the command
// line alike. Each returns kInvalidArgument naming the kind, the name and the
// rule.
#pragma once

#include <string_view>

#include "base/result.h"

namespace config {

// [A-Za-z0-9._-]{1,64}, not starting with '.'.
base::Status ValidateVmName(std::string_view name);
// config::CheckName's rule ([A-Za-z0-9._-]{1,64}).
base::Status ValidateCheckpointName(std::string_view name);
// Guest names select <guest_dir>/<name>-guest.bin: [a-z0-9-]{1,32}.
base::Status ValidateGuestName(std::string_view name);

}  // namespace config
