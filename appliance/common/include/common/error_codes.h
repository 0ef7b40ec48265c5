// The names under which base::Code values cross process boundaries (the
// worker control protocol, the HTTP API, the CLI) and the HTTP status each
// one maps to. One table, so the three agree.
#pragma once

#include <string_view>

#include "base/result.h"

namespace appliance {

// Inverse of base::CodeName ("data-loss" -> kDataLoss); unknown names map to
// kUnknown so a newer peer's code never breaks an older reader.
base::Code CodeFromName(std::string_view name);

// The HTTP status the API answers with for an error of this code.
int HttpStatusForCode(base::Code code);

}  // namespace appliance
