// Helpers for the qcow2 tests: running qemu-img/qemu-io (the reference peer),
// a byte-exact model of the expected disk contents, and seeded random I/O.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "storage/disk.h"
#include "storage/qcow2.h"
#include "test_util.h"

namespace storage::testing {

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs a shell command, capturing its output.
inline CommandResult Run(const std::string& command) {
  CommandResult r;
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.output.append(buf, n);
  int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

inline bool HaveQemuImg() {
  static const bool have =
      Run("qemu-img --version").exit_code == 0 && Run("qemu-io --version").exit_code == 0;
  return have;
}

#define SKIP_WITHOUT_QEMU_IMG()                                              \
  do {                                                                       \
    if (!::storage::testing::HaveQemuImg())                                  \
      GTEST_SKIP() << "qemu-img/qemu-io not installed (Debian: qemu-utils)"; \
  } while (0)

// Expects `qemu-img check` to find no errors and no leaks.
inline void ExpectQemuCheckClean(const std::string& path) {
  auto r = Run("qemu-img check -f qcow2 '" + path + "'");
  EXPECT_EQ(r.exit_code, 0) << "qemu-img check " << path << ":\n" << r.output;
}

// Expects the image (its whole chain) to equal the raw file `expected`.
inline void ExpectQemuCompareEqual(const std::string& image, const std::string& expected) {
  auto r = Run("qemu-img compare -f qcow2 -F raw '" + image + "' '" + expected + "'");
  EXPECT_EQ(r.exit_code, 0) << "qemu-img compare " << image << " " << expected << ":\n" << r.output;
}

// Reads the whole disk through ferry.
inline std::vector<uint8_t> ReadAll(Disk& disk) {
  std::vector<uint8_t> out(disk.size());
  constexpr size_t kChunk = 1 << 20;
  for (uint64_t off = 0; off < out.size(); off += kChunk) {
    size_t n = std::min<uint64_t>(kChunk, out.size() - off);
    auto s = disk.Read(out.data() + off, n, off);
    EXPECT_TRUE(s.has_value()) << s.error().ToString();
    if (!s) break;
  }
  return out;
}

// Seeded random writes, zero writes and discards applied to the disk and to
// `model` alike. Offsets and lengths are 512-byte multiples, biased to cross
// cluster edges.
inline void RandomIo(Qcow2Disk& disk, std::vector<uint8_t>& model, uint64_t seed, int ops,
                     uint64_t cluster_size) {
  std::mt19937_64 rng(seed);
  const uint64_t sectors = model.size() / 512;
  for (int i = 0; i < ops; ++i) {
    uint64_t start = rng() % sectors;
    uint64_t max_len = std::min<uint64_t>(sectors - start, 3 * cluster_size / 512 + 2);
    uint64_t count = 1 + rng() % max_len;
    uint64_t off = start * 512, len = count * 512;
    int kind = int(rng() % 10);
    if (kind < 7) {
      auto data = Pattern(len, seed * 1000 + i);
      if (kind == 6) std::fill(data.begin(), data.end(), 0);  // zeros through Write
      auto s = disk.Write(data.data(), len, off);
      ASSERT_TRUE(s.has_value()) << "seed " << seed << " op " << i << ": " << s.error().ToString();
      std::copy(data.begin(), data.end(), model.begin() + off);
    } else {
      auto s = kind == 7 ? disk.Discard(off, len) : disk.WriteZeroes(off, len);
      ASSERT_TRUE(s.has_value()) << "seed " << seed << " op " << i << ": " << s.error().ToString();
      std::fill(model.begin() + off, model.begin() + off + len, 0);
    }
    if (rng() % 16 == 0) {
      ASSERT_TRUE(disk.Flush().has_value());
    }
  }
}

// First differing offset, or -1.
inline int64_t FirstDiff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) return int64_t(i);
  }
  return -1;
}

}  // namespace storage::testing
