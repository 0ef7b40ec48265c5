// VM definitions in the API's JSON form, and the body of a create request.
// The TOML form on disk is config's; this is only the wire view.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "config/vm_definition.h"

namespace appliance {

nlohmann::json DefinitionToJson(const config::VmDefinition& vm);

// POST /v1/vms body:
//   {"name": "web1", "guest": "memory" | "program": "/abs/prog.bin",
//    "memory_bytes": 268435456, "vcpus": 1, "cmdline": "ws_mib=64",
//    "processor_compatibility": false,
//    "disks": [{"path": "/abs/d.img", "format": "raw", "read_only": false}]}
// Unknown members are rejected so a typo never silently becomes a default.
struct CreateRequest {
  config::VmDefinition definition;  // program empty when guest is set
  std::string guest;                // a guest name to resolve in the host's guest_dir
};
base::Result<CreateRequest> ParseCreateRequest(const nlohmann::json& body);

}  // namespace appliance
