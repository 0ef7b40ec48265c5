// VM definitions and VmService's answers (vm_views.h) in the API's JSON form
// (docs/api.md), and the body of a create request. The TOML form on disk is
// config's; this is only the wire view.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "config/vm_definition.h"
#include "daemon/vm_views.h"

namespace appliance {

nlohmann::json DefinitionToJson(const config::VmDefinition& vm);

// GET /v1/vms/{name}: {"name", "id", "state", "definition", "last_error",
// "saved_state", "changed_unix_ms", "dir", "console", "worker": {"pid",
// "control_socket"[, "vm_state"]} | null, "departure": {...,"watched"} | null
// [, "stats"]}. With view.live (show), last_error falls back to the first
// disk failure the worker reports.
nlohmann::json VmViewToJson(const VmView& view);
// GET /v1/vms: {"vms": [...]}.
nlohmann::json VmListToJson(const std::vector<VmView>& vms);
// GET /v1/host.
nlohmann::json HostInfoToJson(const HostInfo& host);
// Checkpoints: {"name", "created_unix_ms", "parent", "current", "layers"};
// the list {"vm", "current_checkpoint", "checkpoints"}; an apply
// {"checkpoint", "removed_files", "vm"}; a delete {"deleted", "vm",
// "removed_files", "kept_files"}.
nlohmann::json CheckpointToJson(const CheckpointView& checkpoint);
nlohmann::json CheckpointListToJson(const CheckpointList& list);
nlohmann::json AppliedCheckpointToJson(const AppliedCheckpoint& applied);
nlohmann::json DeletedCheckpointToJson(const DeletedCheckpoint& deleted);
// POST /v1/vms/{name}/resolve: {"vm", "outcome": "none"|"moved"|"here",
// "message"[, "destination", "migration_id"][, "forced"][, "state"][, "removed"]}.
nlohmann::json ResolveOutcomeToJson(const ResolveOutcome& outcome);

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
