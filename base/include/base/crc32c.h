// CRC32C (Castagnoli), as used by iSCSI, ext4 and leveldb. Uses the SSE4.2
// instruction when the CPU has it, a table otherwise; both give equal results.
#pragma once

#include <cstddef>
#include <cstdint>

namespace base {

// Extends crc (0 for a fresh computation) over data.
uint32_t Crc32c(const void* data, size_t len, uint32_t crc = 0);

}  // namespace base
