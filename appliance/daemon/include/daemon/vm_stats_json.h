// A running VM's live numbers (the worker's status reply) in the API's JSON
// form, and the disk failure `last_error` shows while the VM runs. Pure, so
// ferryd's Show and the tests share it.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "config/vm_definition.h"
#include "ipc/worker_protocol.h"

namespace appliance {

// The "stats" member of GET /v1/vms/{name}:
//   {"memory_bytes", "disk_reads", "disk_writes", "disk_flushes",
//    "disk_errors" (failed requests over all disks), "exits",
//    "disks": [{"index", "path", "reads", "writes", "flushes", "read_errors",
//               "write_errors", "flush_errors", "errors", "first_error",
//               "first_error_unix_ms"}]}
// Paths come from `definition` (the disks as ferryd records them now).
nlohmann::json StatsToJson(const WorkerStats& stats, const config::VmDefinition& definition);

// The earliest first failure over the VM's disks, as last_error shows it:
// "disk 0 (/srv/web1.qcow2): read at offset 8192 (4096 bytes): <cause>
// (1 read error, 0 write errors, 0 flush errors so far)"; "" when no disk failed.
std::string FirstDiskError(const WorkerStats& stats, const config::VmDefinition& definition);

}  // namespace appliance
