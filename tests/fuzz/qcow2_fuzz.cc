#include "qcow2_fuzz.h"

#include <algorithm>
#include <vector>

#include "memory_block_file.h"
#include "qcow2_disk.h"

namespace storage::fuzz {
namespace {

constexpr size_t kMaxInput = 8 << 20;
constexpr uint64_t kMaxFile = 64 << 20;
constexpr uint64_t kMaxIo = 256 << 10;

void Exercise(Qcow2Disk& disk, bool writable, const uint8_t* data, size_t size) {
  const uint64_t dsize = disk.size();
  if (dsize == 0) return;
  std::vector<uint8_t> buf(kMaxIo);
  // Walk the map a little, reading the start of each extent.
  uint64_t off = 0;
  for (int i = 0; i < 32 && off < dsize; ++i) {
    auto e = disk.MapExtent(off, UINT64_MAX);
    if (!e || e->length == 0) break;
    uint64_t n = std::min<uint64_t>({e->length, kMaxIo, dsize - off});
    (void)disk.Read(buf.data(), n, off);
    off += e->length;
  }
  // Reads at the start, middle and end.
  for (uint64_t at : {uint64_t{0}, dsize / 2 / 512 * 512, dsize - std::min(dsize, kMaxIo)}) {
    uint64_t n = std::min(kMaxIo, dsize - at);
    (void)disk.Read(buf.data(), n, at);
  }
  if (!writable) return;
  // Writes driven by the input's first bytes, so the fuzzer steers them.
  uint64_t seed = size >= 8 ? uint64_t(data[size - 1]) << 8 | data[size / 2] : 7;
  for (int i = 0; i < 6; ++i) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t at = (seed >> 11) % dsize / 512 * 512;
    uint64_t n = std::min<uint64_t>(dsize - at, 512 * (1 + (seed >> 3) % 300));
    std::fill(buf.begin(), buf.begin() + std::min(n, kMaxIo), uint8_t(i * 37 + 1));
    switch (i % 3) {
      case 0: (void)disk.Write(buf.data(), std::min(n, kMaxIo), at); break;
      case 1: (void)disk.WriteZeroes(at, n); break;
      case 2: (void)disk.Discard(at, n); break;
    }
    (void)disk.Read(buf.data(), std::min(n, kMaxIo), at);
  }
  (void)disk.Flush();
}

}  // namespace

void Qcow2FuzzOne(const uint8_t* data, size_t size) {
  if (size > kMaxInput) return;
  for (bool read_only : {true, false}) {
    auto file = std::make_unique<MemoryBlockFile>(
        "/fuzz/disk.qcow2", std::vector<uint8_t>(data, data + size), kMaxFile, !read_only);
    qcow2::OpenParams p;
    p.read_only = read_only;
    p.open_backing = [](const std::string& path, config::DiskFormat, int) {
      return base::Result<std::unique_ptr<Disk>>(
          base::Error(base::Code::kUnavailable, "no backing files in the fuzzer: " + path));
    };
    auto disk = qcow2::OpenQcow2File(std::move(file), p);
    if (!disk) continue;
    Exercise(**disk, !read_only, data, size);
  }
}

}  // namespace storage::fuzz

// libFuzzer's entry point (only linked into the clang fuzzer binary).
#ifdef FERRY_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  storage::fuzz::Qcow2FuzzOne(data, size);
  return 0;
}
#endif
