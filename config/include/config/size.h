// Byte sizes as admins write them: one parser for vm.toml ("memory = \"256MB\""),
// host.toml and the command line ("--memory 256MB"), so every place accepts
// the same spellings.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace config {

// "4096" or "4096B" (bytes), "256K", "256M", "1G", "2T", each also as
// "256MB" or "256MiB", any case. Units are binary (K = 1024). An empty text,
// another unit, a sign, a fraction or an overflow is kInvalidArgument naming
// the text.
base::Result<uint64_t> ParseSize(std::string_view text);

// 268435456 -> "256 MiB"; the largest exact binary unit, else "N B".
std::string FormatSize(uint64_t bytes);

}  // namespace config
