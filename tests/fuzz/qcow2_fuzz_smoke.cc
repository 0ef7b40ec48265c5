// A short deterministic fuzz run for the test suite (no clang needed): builds
// a seed corpus of valid images in-process (cluster sizes, backing name,
// zero clusters, zlib and zstd compressed clusters), runs each through
// Qcow2FuzzOne, then N seeded random mutations of them.
//
//   qcow2_fuzz_smoke [--iterations N] [--seed S] [--only I] [--write-corpus DIR]
//
// --only replays one mutation (its index is printed on failure by a sanitizer
// run's last "iteration" line with FERRY_FUZZ_VERBOSE=1); --write-corpus
// stores the seeds as files for the libFuzzer target.
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "fuzz_smoke_main.h"
#include "qcow2_compress.h"
#include "qcow2_format.h"
#include "qcow2_fuzz.h"
#include "storage/qcow2.h"

namespace storage::fuzz {
namespace {

using ferry_fuzz::Bytes;

Bytes ReadWhole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

bool Check(const base::Status& s, const char* what) {
  if (!s) std::fprintf(stderr, "seed corpus: %s: %s\n", what, s.error().ToString().c_str());
  return s.has_value();
}

// Replaces guest cluster `index` (within L1 entry 0) by a compressed copy of
// its data appended to the image.
bool Compress(Bytes& img, uint64_t index, uint8_t type) {
  auto h = qcow2::ParseHeader(img, img.size(), "seed");
  if (!h) return false;
  uint64_t cs = h->cluster_size();
  uint64_t l2 = qcow2::GetBe64(&img[h->l1_table_offset]) & qcow2::kOffsetMask;
  if (l2 == 0) return false;
  uint64_t host = qcow2::GetBe64(&img[l2 + index * 8]) & qcow2::kOffsetMask;
  if (host == 0 || host + cs > img.size()) return false;
  auto packed = qcow2::CompressCluster(type, std::span<const uint8_t>(&img[host], cs));
  if (!packed || packed->empty()) return false;
  uint64_t at = (img.size() + 511) / 512 * 512;
  img.resize(at + packed->size(), 0);
  std::memcpy(&img[at], packed->data(), packed->size());
  uint32_t x = 62 - (h->cluster_bits - 8);
  uint64_t sectors = (packed->size() + 511) / 512;
  qcow2::PutBe64(&img[l2 + index * 8], qcow2::kOflagCompressed | at | ((sectors - 1) << x));
  if (type == qcow2::kCompressionZstd) {
    img[104] = qcow2::kCompressionZstd;
    img[79] |= uint8_t(qcow2::kIncompatCompression);
  }
  return true;
}

std::vector<Bytes> MakeSeeds(const std::string& dir) {
  std::vector<Bytes> seeds;
  int n = 0;
  auto make = [&](uint32_t cs, uint64_t size, const std::string& backing, int writes,
                  int compress) {
    std::string path = dir + "/seed" + std::to_string(n++) + ".qcow2";
    Qcow2CreateOptions o;
    o.size = size;
    o.cluster_size = cs;
    o.backing_file = backing;
    o.backing_format = config::DiskFormat::kRaw;
    if (!Check(CreateQcow2(path, o), "create")) return;
    if (writes > 0) {
      // Opening needs the backing file; write before naming one.
      auto d = OpenQcow2Disk(path, false);
      if (!Check(d.has_value() ? base::Ok() : base::Status(d.error()), "open")) return;
      Bytes data(cs);
      for (int i = 0; i < writes; ++i) {
        for (size_t k = 0; k < data.size(); ++k) data[k] = uint8_t(k / 97 + i);
        uint64_t at = uint64_t(i) * 3 * cs % size;
        (void)(*d)->Write(data.data(), std::min<uint64_t>(cs, size - at), at);
      }
      (void)(*d)->WriteZeroes(cs, cs);
      (void)(*d)->Discard(2 * cs, cs);
      (void)(*d)->Flush();
    }
    Bytes img = ReadWhole(path);
    if (compress >= 0) Compress(img, 0, uint8_t(compress));
    seeds.push_back(std::move(img));
  };
  make(65536, 4 << 20, "", 0, -1);
  make(4096, 8 << 20, "", 12, -1);
  make(65536, 16 << 20, "", 6, qcow2::kCompressionZlib);
  make(65536, 16 << 20, "", 6, qcow2::kCompressionZstd);
  make(4096, 2 << 20, "", 4, qcow2::kCompressionZlib);
  make(2 << 20, 8 << 20, "", 2, -1);
  // A backing file name and format extension (the fuzzer refuses to open it).
  std::string base = dir + "/base.raw";
  std::ofstream(base, std::ios::binary) << std::string(1 << 20, 'b');
  make(65536, 0, "base.raw", 0, -1);
  return seeds;
}

void Mutate(Bytes& b, std::mt19937_64& rng) {
  int count = 1 + int(rng() % 8);
  for (int i = 0; i < count && !b.empty(); ++i) {
    // Half the mutations hit the first 128 KiB, where the header and (for
    // small clusters) the tables live.
    uint64_t span = (rng() & 1) ? std::min<uint64_t>(b.size(), 128 << 10) : b.size();
    uint64_t pos = rng() % span;
    switch (rng() % 6) {
      case 0:
      case 1: b[pos] ^= uint8_t(1u << (rng() % 8)); break;
      case 2: b[pos] = uint8_t(rng()); break;
      case 3: {  // an interesting 64-bit big-endian value at an 8-byte slot
        static const uint64_t kValues[] = {
            0, 1, 0x200, 0x10000, 1ull << 40, ~0ull, 0x8000000000000000ull, 0x4000000000000000ull};
        pos &= ~uint64_t{7};
        if (pos + 8 <= b.size()) qcow2::PutBe64(&b[pos], kValues[rng() % 8]);
        break;
      }
      case 4: b.resize(pos); break;  // truncate
      case 5: b.resize(b.size() + rng() % 70000, uint8_t(rng())); break;
    }
  }
}

// The generic driver's signature; qcow2's mutations need no other seed.
void MutateImage(Bytes& b, const std::vector<Bytes>& /*seeds*/, std::mt19937_64& rng) {
  Mutate(b, rng);
}

int Main(int argc, char** argv) {
  char tmpl[] = "/tmp/ferry-qcow2-fuzz-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return 2;
  auto seeds = MakeSeeds(tmpl);
  std::filesystem::remove_all(tmpl);
  if (seeds.size() < 7) {
    std::fprintf(stderr, "qcow2_fuzz_smoke: only %zu of 7 seeds were built\n", seeds.size());
    return 1;
  }
  return ferry_fuzz::SmokeMain("qcow2_fuzz_smoke", seeds, Qcow2FuzzOne, argc, argv, MutateImage);
}

}  // namespace
}  // namespace storage::fuzz

int main(int argc, char** argv) { return storage::fuzz::Main(argc, argv); }
