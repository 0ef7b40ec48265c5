// What a destination accepts from a peer's Prepare about where files go.
// The plan names absolute paths chosen by the source; a buggy or hostile
// source must not make this host write, point a backing file, or later
// delete (clean-up removes every planned file) anywhere but inside the
// destination directory it asked for. Checked lexically and against the
// file system before anything is created.
#pragma once

#include <string>
#include <vector>

#include "config/vm_definition.h"
#include "protocol/move_protocol.h"

namespace appliance {

// Absolute, and every component a real name (no "", ".", ".."); not "/".
bool IsCleanAbsolute(const std::string& path);
// path lies strictly below dir (lexically; both clean absolute paths).
bool IsInside(const std::string& path, const std::string& dir);

// Every reason the plan is not confined (empty: it is):
//  - destination absolute, without "." / ".." components, no symlink in its
//    existing part, and outside storage_root (ferry's own inventory);
//  - every planned file strictly inside the destination, without ".."
//    components;
//  - backing names (kept or rewritten) relative without "..", or absolute
//    inside the destination;
//  - the moved definition's disks are exactly the plan's writable tops.
std::vector<std::string> PlanConfinementFailures(const PrepareRequest& plan,
                                                 const config::VmDefinition& definition,
                                                 const std::string& storage_root);

}  // namespace appliance
