// UUID text helpers for VM ids (NewUuid itself is public, in vm_definition.h).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace config {

// The canonical lower-case 8-4-4-4-12 form of a UUID written in either case,
// or nullopt if text is not a UUID.
std::optional<std::string> NormalizeUuid(std::string_view text);

}  // namespace config
