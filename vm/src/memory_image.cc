#include "memory_image.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/le.h"

namespace vm {
namespace {

constexpr uint64_t kMaxRunPages = 2048;  // 8 MiB per write
constexpr size_t kSectionPrologue = 16;  // u64 memory bytes, u32 page size, u32 reserved
constexpr size_t kRunHeader = 16;        // u64 first page, u32 page count, u32 reserved

bool PageIsZero(const uint8_t* p) {
  // Word-wise scan; the compiler vectorises it.
  const auto* w = reinterpret_cast<const uint64_t*>(p);
  uint64_t acc = 0;
  for (size_t i = 0; i < kPageSize / 8; ++i) acc |= w[i];
  return acc == 0;
}

base::Status WriteRun(StateFileWriter& writer, const uint8_t* base, uint64_t first, uint64_t count,
                      MemoryImageStats& stats) {
  uint8_t h[kRunHeader] = {};
  base::PutLe64(h, first);
  base::PutLe32(h + 8, static_cast<uint32_t>(count));
  RETURN_IF_ERROR(writer.Append(h, sizeof h));
  RETURN_IF_ERROR(writer.Append(base + first * kPageSize, count * kPageSize));
  stats.pages_written += count;
  ++stats.runs;
  return base::Ok();
}

}  // namespace

base::Result<MemoryImageStats> SaveMemoryImage(GuestMemory& memory, StateFileWriter& writer) {
  MemoryImageStats stats;
  RETURN_IF_ERROR(writer.BeginSection(SectionType::kMemory));
  uint8_t prologue[kSectionPrologue] = {};
  base::PutLe64(prologue, memory.size());
  base::PutLe32(prologue + 8, static_cast<uint32_t>(kPageSize));
  RETURN_IF_ERROR(writer.Append(prologue, sizeof prologue));

  const uint8_t* base = memory.base();
  const off_t size = static_cast<off_t>(memory.size());
  off_t pos = 0;
  while (pos < size) {
    off_t data = ::lseek(memory.memfd(), pos, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // no data after pos: the rest was never touched
      return base::ErrnoError("lseek(SEEK_DATA) on guest memory");
    }
    off_t hole = ::lseek(memory.memfd(), data, SEEK_HOLE);
    if (hole < 0) return base::ErrnoError("lseek(SEEK_HOLE) on guest memory");
    uint64_t first = static_cast<uint64_t>(data) / kPageSize;
    uint64_t end = (static_cast<uint64_t>(std::min(hole, size)) + kPageSize - 1) / kPageSize;
    uint64_t run_start = 0, run_len = 0;
    for (uint64_t page = first; page < end; ++page) {
      if (PageIsZero(base + page * kPageSize)) {
        if (run_len) RETURN_IF_ERROR(WriteRun(writer, base, run_start, run_len, stats));
        run_len = 0;
        continue;
      }
      if (run_len == 0) run_start = page;
      if (++run_len == kMaxRunPages) {
        RETURN_IF_ERROR(WriteRun(writer, base, run_start, run_len, stats));
        run_len = 0;
      }
    }
    if (run_len) RETURN_IF_ERROR(WriteRun(writer, base, run_start, run_len, stats));
    pos = static_cast<off_t>(end * kPageSize);
  }
  RETURN_IF_ERROR(writer.EndSection());
  return stats;
}

base::Status LoadMemoryImage(StateFileReader& reader, GuestMemory& memory) {
  uint64_t pages = memory.size() / kPageSize;
  ASSIGN_OR_RETURN(uint64_t len,
                   reader.BeginSection(SectionType::kMemory,
                                       kSectionPrologue + memory.size() + pages * kRunHeader));
  (void)len;
  uint8_t prologue[kSectionPrologue];
  RETURN_IF_ERROR(reader.Read(prologue, sizeof prologue));
  uint64_t saved_bytes = base::GetLe64(prologue);
  if (saved_bytes != memory.size())
    return reader.Corrupt("memory section holds " + std::to_string(saved_bytes) +
                          " bytes of RAM, the machine section says " +
                          std::to_string(memory.size()));
  if (base::GetLe32(prologue + 8) != kPageSize || base::GetLe32(prologue + 12) != 0)
    return reader.Corrupt("memory section has page size " +
                          std::to_string(base::GetLe32(prologue + 8)) +
                          " or a non-zero reserved field");
  uint64_t next_free = 0;  // runs must be ascending and disjoint
  while (reader.section_remaining() > 0) {
    uint8_t h[kRunHeader];
    RETURN_IF_ERROR(reader.Read(h, sizeof h));
    uint64_t first = base::GetLe64(h);
    uint64_t count = base::GetLe32(h + 8);
    if (base::GetLe32(h + 12) != 0)
      return reader.Corrupt("page run header has a non-zero reserved field");
    if (count == 0 || count > kMaxRunPages || first < next_free || first > pages ||
        count > pages - first)
      return reader.Corrupt("page run [" + std::to_string(first) + ", +" + std::to_string(count) +
                            ") is out of order or outside " + std::to_string(pages) + " pages");
    RETURN_IF_ERROR(reader.Read(memory.base() + first * kPageSize, count * kPageSize));
    next_free = first + count;
  }
  return reader.EndSection();
}

}  // namespace vm
