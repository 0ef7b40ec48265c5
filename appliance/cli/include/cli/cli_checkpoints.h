// The ferry CLI's checkpoint commands: human output, pure like cli_output.h.
// Their arguments are rows of the verb table (src/cli_verbs.cc):
//
//   ferry vm checkpoint create VM NAME      POST   /v1/vms/VM/checkpoints {"name": NAME}
//   ferry vm checkpoint list VM             GET    /v1/vms/VM/checkpoints
//   ferry vm checkpoint apply VM NAME [--force]
//                                           POST   /v1/vms/VM/checkpoints/NAME/apply {"force": ...}
//   ferry vm checkpoint delete VM NAME      DELETE /v1/vms/VM/checkpoints/NAME
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "cli/cli_args.h"

namespace appliance {

// GET .../checkpoints -> a table NAME CREATED PARENT, the current checkpoint
// marked, and a last line saying what the disks build on.
std::string FormatCheckpointList(const nlohmann::json& list);
// The line printed after create, apply or delete.
std::string FormatCheckpointResult(const CliInvocation& inv, const nlohmann::json& reply);
// "2025-11-21 10:00:00 UTC" for milliseconds since 1970.
std::string FormatUnixMillis(int64_t unix_ms);

}  // namespace appliance
