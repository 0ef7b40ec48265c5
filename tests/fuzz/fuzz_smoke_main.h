// The deterministic smoke run shared by the frame, protocol and config fuzz
// targets (qcow2 keeps its own, with disk-image-specific mutations): every
// seed through the entry point, then N seeded random mutations of them. No
// clang needed; in the test suite with label unit, so the asan build runs it.
//
//   <name>_fuzz_smoke [--iterations N] [--seed S] [--only I] [--write-corpus DIR]
//
// --only replays one mutation (FERRY_FUZZ_VERBOSE=1 prints each index before
// it runs, so a crash's last line names it); --write-corpus stores the seeds
// as files for the libFuzzer target. The entry point aborts (with a message)
// when an invariant breaks; a crash or sanitizer report fails the test.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace ferry_fuzz {

using Bytes = std::vector<uint8_t>;
using FuzzOneFn = void (*)(const uint8_t* data, size_t size);

inline Bytes ToBytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

// Byte-level mutations: bit flips, random and boundary bytes, insertions,
// deletions, truncation, a copied span and a splice with another seed.
inline void Mutate(Bytes& b, const std::vector<Bytes>& seeds, std::mt19937_64& rng) {
  const int count = 1 + int(rng() % 6);
  for (int i = 0; i < count; ++i) {
    const size_t pos = b.empty() ? 0 : rng() % b.size();
    switch (rng() % 9) {
      case 0:
      case 1:
        if (!b.empty()) b[pos] ^= uint8_t(1u << (rng() % 8));
        break;
      case 2:
        if (!b.empty()) b[pos] = uint8_t(rng());
        break;
      case 3: {  // a boundary value, little-endian, at a 4-byte slot
        static const uint32_t kValues[] = {0,      1,       0x7f,       0xff,
                                           0xffff, 0x10000, 0x7fffffff, 0xffffffff};
        const uint32_t v = kValues[rng() % 8];
        const size_t at = pos & ~size_t{3};
        for (size_t k = 0; k < 4 && at + k < b.size(); ++k) b[at + k] = uint8_t(v >> (8 * k));
        break;
      }
      case 4: b.insert(b.begin() + long(pos), 1 + rng() % 8, uint8_t(rng())); break;
      case 5:
        if (!b.empty())
          b.erase(b.begin() + long(pos),
                  b.begin() + long(std::min(b.size(), pos + 1 + rng() % 16)));
        break;
      case 6: b.resize(pos); break;
      case 7:
        if (!b.empty()) {  // duplicate a span in place (repeats a frame, a JSON member)
          const size_t len = std::min<size_t>(b.size() - pos, 1 + rng() % 64);
          Bytes span(b.begin() + long(pos), b.begin() + long(pos + len));
          b.insert(b.begin() + long(rng() % (b.size() + 1)), span.begin(), span.end());
        }
        break;
      case 8: {  // splice: our head, another seed's tail
        const Bytes& other = seeds[rng() % seeds.size()];
        const size_t from = other.empty() ? 0 : rng() % other.size();
        b.resize(pos);
        b.insert(b.end(), other.begin() + long(from), other.end());
        break;
      }
    }
  }
}

// A target whose inputs want their own mutations (qcow2: big-endian fields,
// large resizes) passes its own; the rest use Mutate above.
using MutateFn = void (*)(Bytes& b, const std::vector<Bytes>& seeds, std::mt19937_64& rng);

inline int SmokeMain(const char* name, const std::vector<Bytes>& seeds, FuzzOneFn fuzz_one,
                     int argc, char** argv, MutateFn mutate = Mutate) {
  uint64_t iterations = 2000, seed = 1;
  int64_t only = -1;
  std::string corpus_out;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--iterations")
      iterations = std::strtoull(argv[i + 1], nullptr, 10);
    else if (flag == "--seed")
      seed = std::strtoull(argv[i + 1], nullptr, 10);
    else if (flag == "--only")
      only = std::strtoll(argv[i + 1], nullptr, 10);
    else if (flag == "--write-corpus")
      corpus_out = argv[i + 1];
  }
  if (seeds.empty()) {
    std::fprintf(stderr, "%s: no seeds were built\n", name);
    return 1;
  }
  if (!corpus_out.empty()) {
    std::filesystem::create_directories(corpus_out);
    for (size_t i = 0; i < seeds.size(); ++i) {
      std::ofstream(corpus_out + "/seed" + std::to_string(i), std::ios::binary)
          .write(reinterpret_cast<const char*>(seeds[i].data()), std::streamsize(seeds[i].size()));
    }
  }
  const bool verbose = std::getenv("FERRY_FUZZ_VERBOSE") != nullptr;
  std::printf("%s: %zu seeds, %llu mutations from seed %llu\n", name, seeds.size(),
              static_cast<unsigned long long>(iterations), static_cast<unsigned long long>(seed));
  if (only < 0) {
    for (const Bytes& s : seeds) fuzz_one(s.data(), s.size());
  }
  for (uint64_t i = 0; i < iterations; ++i) {
    if (only >= 0 && i != uint64_t(only)) continue;
    std::mt19937_64 rng(seed * 1000003 + i);
    Bytes b = seeds[rng() % seeds.size()];
    mutate(b, seeds, rng);
    if (verbose) std::fprintf(stderr, "iteration %llu\n", static_cast<unsigned long long>(i));
    fuzz_one(b.data(), b.size());
  }
  std::printf("%s: done, no crash\n", name);
  return 0;
}

// An invariant of the code under test broke: a fuzz finding, not an input
// error. Aborts so both libFuzzer and the smoke run report it.
[[noreturn]] inline void Fail(const char* target, const std::string& what) {
  std::fprintf(stderr, "%s: invariant broken: %s\n", target, what.c_str());
  std::abort();
}

}  // namespace ferry_fuzz
