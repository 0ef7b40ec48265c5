// Guest RAM in the state file's memory section (vm/STATE_FORMAT.md): runs of
// non-zero pages, each a small header and the page contents. Never-touched
// parts of the memfd are found with lseek(SEEK_DATA/SEEK_HOLE) and skipped
// without reading them; touched pages that are all zero are skipped too, so a
// mostly idle guest saves in time proportional to what it actually uses.
#pragma once

#include <cstdint>

#include "base/result.h"
#include "guest_memory.h"
#include "state_file.h"

namespace vm {

struct MemoryImageStats {
  uint64_t pages_written = 0;
  uint64_t runs = 0;
};

// Requires the guest to be paused (the pages must not change underneath).
base::Result<MemoryImageStats> SaveMemoryImage(GuestMemory& memory, StateFileWriter& writer);
// Fills a fresh (all-zero) GuestMemory of the saved size from the section.
base::Status LoadMemoryImage(StateFileReader& reader, GuestMemory& memory);

}  // namespace vm
