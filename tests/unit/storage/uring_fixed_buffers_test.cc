// The io_uring engine's registered (fixed) buffers and registered file: the
// fixed path is really taken, and seeded random batches give exactly what the
// pread/pwrite engine (the oracle) gives, buffered and O_DIRECT, with the
// pool on, off, and too small for the queue. White-box: reads the engine's
// stats. Short and interrupted completions through the fixed path are
// covered by uring_faults_test (its files use the default pool).
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <utility>

#include "test_util.h"
#include "uring_block_file.h"

namespace storage {
namespace {

using ferry_test::ReadBytes;
using testing::Pattern;
using testing::TempDir;

constexpr uint64_t kFileBytes = 4 << 20;

struct PoolSetup {
  const char* name;
  bool direct;
  unsigned fixed_buffers;
  size_t fixed_buffer_size;
  unsigned queue_depth;
};

std::unique_ptr<BlockFile> Open(const std::string& path, IoEngine engine, const PoolSetup& s) {
  OpenOptions o;
  o.engine = engine;
  o.create = true;
  o.direct = s.direct;
  o.fixed_buffers = s.fixed_buffers;
  o.fixed_buffer_size = s.fixed_buffer_size;
  o.queue_depth = s.queue_depth;
  o.max_chunk = 128 << 10;
  auto r = OpenBlockFile(path, o);
  EXPECT_TRUE(r.has_value()) << r.error().ToString();
  return r.has_value() ? *std::move(r) : nullptr;
}

// Aligned storage for one request (O_DIRECT needs the address aligned).
struct Buffer {
  explicit Buffer(size_t n) : len(n) {
    p = static_cast<uint8_t*>(
        std::aligned_alloc(kDirectAlignment, (n + 4095) / 4096 * 4096 + 4096));
  }
  ~Buffer() { std::free(p); }
  Buffer(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept : p(std::exchange(o.p, nullptr)), len(o.len) {}
  uint8_t* p;
  size_t len;
};

// Runs `rounds` seeded batches of non-overlapping reads and writes (a batch
// is unordered) against both files and compares every result and read.
// Writes stay below file_size, so the end of file (where reads come back
// short) does not depend on the order within a batch.
void RunRandomBatches(BlockFile& uring, BlockFile& sync, bool direct, uint64_t file_size,
                      uint64_t seed, int rounds) {
  std::mt19937_64 rng(seed);
  const uint64_t unit = direct ? kDirectAlignment : 1;
  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE("seed " + std::to_string(seed) + " round " + std::to_string(round));
    // Cut the file (plus a little past its end, for short reads) into
    // disjoint slices and take a random subset as requests.
    std::vector<Buffer> ubufs, sbufs;
    std::vector<IoRequest> ureq, sreq;
    uint64_t at = (rng() % 64) * unit;
    while (at < kFileBytes + (256 << 10) && ureq.size() < 48) {
      uint64_t max_units = (rng() % 4 == 0 ? (300 << 10) : (20 << 10)) / unit;
      uint64_t len = (1 + rng() % max_units) * unit;
      if (rng() % 3 != 0) {
        IoOp op = rng() % 2 && at + len <= file_size ? IoOp::kWrite : IoOp::kRead;
        ubufs.emplace_back(len);
        sbufs.emplace_back(len);
        if (op == IoOp::kWrite) {
          auto data = Pattern(len, rng());
          std::memcpy(ubufs.back().p, data.data(), len);
          std::memcpy(sbufs.back().p, data.data(), len);
        } else {
          std::memset(ubufs.back().p, 0xee, len);
          std::memset(sbufs.back().p, 0xee, len);
        }
        ureq.push_back({op, ubufs.back().p, len, at});
        sreq.push_back({op, sbufs.back().p, len, at});
      }
      at += len + (rng() % 8) * unit;
    }
    auto u = uring.SubmitBatch(ureq);
    auto s = sync.SubmitBatch(sreq);
    ASSERT_TRUE(u.has_value()) << u.error().ToString();
    ASSERT_TRUE(s.has_value()) << s.error().ToString();
    ASSERT_EQ(*u, *s);
    for (size_t i = 0; i < ureq.size(); ++i) {
      if (ureq[i].op != IoOp::kRead) continue;
      ASSERT_EQ(std::memcmp(ureq[i].buf, sreq[i].buf, ureq[i].len), 0)
          << "read " << i << " at " << ureq[i].offset << " (" << ureq[i].len << " bytes)";
    }
  }
}

class FixedBuffersTest : public ::testing::TestWithParam<PoolSetup> {};

INSTANTIATE_TEST_SUITE_P(
    Setups, FixedBuffersTest,
    ::testing::Values(PoolSetup{"Buffered", false, 32, 64 << 10, 16},
                      PoolSetup{"Direct", true, 32, 64 << 10, 16},
                      PoolSetup{"SmallPool", false, 2, 4096, 16},  // most chunks find no slot
                      PoolSetup{"DirectSmallSlots", true, 8, 8192, 8},
                      PoolSetup{"PoolOff", false, 0, 64 << 10, 16}),
    [](const ::testing::TestParamInfo<PoolSetup>& p) { return std::string(p.param.name); });

TEST_P(FixedBuffersTest, SameResultsAsTheSyncEngine) {
  const PoolSetup& s = GetParam();
  TempDir dir;
  // Both files start with the same contents and a ragged end (not a
  // multiple of 4096), so reads at the end are short in both engines.
  auto initial = Pattern(kFileBytes - (s.direct ? 0 : 1000), 11);
  ferry_test::WriteFile(dir.File("u"), initial);
  ferry_test::WriteFile(dir.File("s"), initial);
  auto uring = Open(dir.File("u"), IoEngine::kIoUring, s);
  if (uring == nullptr) return;
  auto sync = Open(dir.File("s"), IoEngine::kSync, s);
  ASSERT_NE(sync, nullptr);
  const UringBlockFile::Stats& stats = dynamic_cast<UringBlockFile&>(*uring).stats();
  EXPECT_EQ(stats.fixed_slots, std::min(s.fixed_buffers, s.queue_depth));
  EXPECT_TRUE(stats.fixed_file);

  for (uint64_t seed = 1; seed <= 4; ++seed)
    RunRandomBatches(*uring, *sync, s.direct, initial.size(), seed, 12);
  ASSERT_TRUE(uring->Flush().has_value());
  ASSERT_TRUE(sync->Flush().has_value());
  EXPECT_TRUE(ReadBytes(dir.File("u")) == ReadBytes(dir.File("s"))) << "file contents differ";

  if (s.fixed_buffers == 0) {
    EXPECT_EQ(stats.fixed_submissions, 0u);
  } else {
    EXPECT_GT(stats.fixed_submissions, 0u) << "the fixed-buffer path was never taken";
  }
  EXPECT_GT(stats.plain_submissions, 0u) << "requests larger than a slot use the caller's buffer";
}

TEST(FixedBuffersPathTest, SmallRequestsAllTakeTheFixedPath) {
  TempDir dir;
  PoolSetup s{"", false, 32, 64 << 10, 32};
  auto f = Open(dir.File("f"), IoEngine::kIoUring, s);
  ASSERT_NE(f, nullptr);
  const UringBlockFile::Stats& stats = dynamic_cast<UringBlockFile&>(*f).stats();
  // 4 KiB writes at queue depth 32, as the VM or a benchmark issues them.
  std::vector<std::vector<uint8_t>> data;
  std::vector<IoRequest> batch;
  for (int i = 0; i < 32; ++i) {
    data.push_back(Pattern(4096, 100 + i));
    batch.push_back({IoOp::kWrite, data.back().data(), 4096, uint64_t(i) * 3 * 4096});
  }
  ASSERT_TRUE(f->SubmitBatch(batch).has_value());
  EXPECT_EQ(stats.fixed_submissions, 32u);
  EXPECT_EQ(stats.plain_submissions, 0u);
  for (int i = 0; i < 32; ++i) {
    std::vector<uint8_t> back(4096);
    ASSERT_EQ(*f->ReadAt(back.data(), back.size(), uint64_t(i) * 3 * 4096), 4096u);
    EXPECT_EQ(back, data[i]) << i;
  }
  EXPECT_EQ(stats.fixed_submissions, 64u);
  EXPECT_EQ(stats.plain_submissions, 0u);
  ASSERT_TRUE(f->Flush().has_value());  // fsync through the registered file
}

TEST(FixedBuffersPathTest, InvalidPoolOptions) {
  TempDir dir;
  OpenOptions o;
  o.create = true;
  o.fixed_buffer_size = 1000;  // not a multiple of 4096
  auto r = OpenBlockFile(dir.File("f"), o);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), base::Code::kInvalidArgument);
  o.fixed_buffer_size = 2 << 20;  // above 1 MiB
  EXPECT_FALSE(OpenBlockFile(dir.File("f"), o).has_value());
  o.fixed_buffers = 0;  // no pool: the size does not matter
  EXPECT_TRUE(OpenBlockFile(dir.File("f"), o).has_value());
}

}  // namespace
}  // namespace storage
