// Helpers shared by the storage tests: seeded patterns, engine names (temp
// dirs and files come from tests/support).
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "storage/block_file.h"
#include "support/files.h"
#include "support/temp_dir.h"

namespace storage::testing {

using ferry_test::ReadBytes;
using ferry_test::TempDir;
using ferry_test::WriteFile;

// Deterministic bytes for a seed, so a failure can be replayed.
inline std::vector<uint8_t> Pattern(size_t len, uint64_t seed) {
  std::vector<uint8_t> out(len);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& b : out) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b = static_cast<uint8_t>(x);
  }
  return out;
}

// Names parameterised tests "IoUring" / "Sync".
inline std::string EngineName(const ::testing::TestParamInfo<IoEngine>& info) {
  return info.param == IoEngine::kIoUring ? "IoUring" : "Sync";
}

}  // namespace storage::testing
