#include "storage/block_file.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>

#include "test_util.h"

namespace storage {
namespace {

using base::Code;
using ferry_test::ReadBytes;
using ferry_test::WriteFile;
using testing::Pattern;
using testing::TempDir;

std::unique_ptr<BlockFile> MustOpen(const std::string& path, OpenOptions options) {
  auto r = OpenBlockFile(path, options);
  EXPECT_TRUE(r.has_value()) << r.error().ToString();
  return r.has_value() ? *std::move(r) : nullptr;
}

OpenOptions Options(IoEngine engine, bool create = true) {
  OpenOptions o;
  o.engine = engine;
  o.create = create;
  return o;
}

// Both engines run every test in this suite.
class EngineTest : public ::testing::TestWithParam<IoEngine> {};

INSTANTIATE_TEST_SUITE_P(Engines, EngineTest,
                         ::testing::Values(IoEngine::kIoUring, IoEngine::kSync),
                         testing::EngineName);

TEST_P(EngineTest, WriteReadRoundTrip) {
  TempDir dir;
  auto f = MustOpen(dir.File("f"), Options(GetParam()));
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->engine(), GetParam());
  EXPECT_EQ(f->path(), dir.File("f"));
  auto data = Pattern(10000, 1);
  ASSERT_TRUE(f->WriteAt(data.data(), data.size(), 100).has_value());
  ASSERT_TRUE(f->Flush().has_value());
  EXPECT_EQ(*f->Size(), 10100u);
  std::vector<uint8_t> back(data.size());
  auto n = f->ReadAt(back.data(), back.size(), 100);
  ASSERT_TRUE(n.has_value()) << n.error().ToString();
  EXPECT_EQ(*n, data.size());
  EXPECT_EQ(back, data);
  auto on_disk = ReadBytes(dir.File("f"));
  ASSERT_EQ(on_disk.size(), 10100u);
  EXPECT_EQ(std::vector<uint8_t>(on_disk.begin() + 100, on_disk.end()), data);
  EXPECT_EQ(on_disk[0], 0);  // the hole before the write
}

TEST_P(EngineTest, ShortReadsOnlyAtEndOfFile) {
  TempDir dir;
  WriteFile(dir.File("f"), Pattern(10000, 2));
  OpenOptions o = Options(GetParam(), false);
  o.max_chunk = 4096;  // end of file falls inside the third chunk
  o.queue_depth = 2;
  auto f = MustOpen(dir.File("f"), o);
  ASSERT_NE(f, nullptr);
  std::vector<uint8_t> buf(20000, 0xee);
  EXPECT_EQ(*f->ReadAt(buf.data(), 16384, 0), 10000u);
  EXPECT_EQ(std::vector<uint8_t>(buf.begin(), buf.begin() + 10000), Pattern(10000, 2));
  EXPECT_EQ(*f->ReadAt(buf.data(), 4096, 9000), 1000u);
  EXPECT_EQ(*f->ReadAt(buf.data(), 4096, 10000), 0u);
  EXPECT_EQ(*f->ReadAt(buf.data(), 4096, 1u << 30), 0u);
  EXPECT_EQ(*f->ReadAt(buf.data(), 0, 0), 0u);
}

TEST_P(EngineTest, LargeIoBeyondQueueDepthTimesChunk) {
  TempDir dir;
  OpenOptions o = Options(GetParam());
  o.queue_depth = 4;
  o.max_chunk = 4096;
  auto f = MustOpen(dir.File("f"), o);
  ASSERT_NE(f, nullptr);
  // 300 chunks of 4 KiB plus a tail: 75 rounds of the queue.
  const size_t len = 300 * 4096 + 123;
  auto data = Pattern(len, 3);
  ASSERT_TRUE(f->WriteAt(data.data(), len, 7).has_value());
  std::vector<uint8_t> back(len);
  EXPECT_EQ(*f->ReadAt(back.data(), len, 7), len);
  EXPECT_EQ(back, data);
  auto on_disk = ReadBytes(dir.File("f"));
  EXPECT_EQ(std::vector<uint8_t>(on_disk.begin() + 7, on_disk.end()), data);
}

TEST_P(EngineTest, LargeIoWithDefaultChunks) {
  TempDir dir;
  OpenOptions o = Options(GetParam());
  o.queue_depth = 2;  // default 1 MiB chunks: 6 MiB is three rounds
  auto f = MustOpen(dir.File("f"), o);
  ASSERT_NE(f, nullptr);
  auto data = Pattern(6 * 1024 * 1024 + 1, 4);
  ASSERT_TRUE(f->WriteAt(data.data(), data.size(), 0).has_value());
  std::vector<uint8_t> back(data.size());
  EXPECT_EQ(*f->ReadAt(back.data(), back.size(), 0), data.size());
  EXPECT_TRUE(back == data);
}

TEST_P(EngineTest, BatchOfReadsAndWrites) {
  TempDir dir;
  WriteFile(dir.File("f"), Pattern(64 * 1024, 5));
  OpenOptions o = Options(GetParam(), false);
  o.queue_depth = 3;
  o.max_chunk = 8192;
  auto f = MustOpen(dir.File("f"), o);
  ASSERT_NE(f, nullptr);
  auto w1 = Pattern(20000, 6);
  auto w2 = Pattern(5000, 7);
  std::vector<uint8_t> r1(16384), r2(8192), r3(100);
  IoRequest batch[] = {
      {IoOp::kWrite, w1.data(), w1.size(), 0},
      {IoOp::kRead, r1.data(), r1.size(), 32768},
      {IoOp::kWrite, w2.data(), w2.size(), 70000},  // extends the file
      {IoOp::kRead, r2.data(), r2.size(), 60000},   // crosses the old end of file
      {IoOp::kRead, r3.data(), 0, 0},
  };
  auto done = f->SubmitBatch(batch);
  ASSERT_TRUE(done.has_value()) << done.error().ToString();
  auto original = Pattern(64 * 1024, 5);
  ASSERT_EQ(done->size(), 5u);
  EXPECT_EQ((*done)[0], w1.size());
  EXPECT_EQ((*done)[1], r1.size());
  EXPECT_EQ((*done)[2], w2.size());
  EXPECT_EQ((*done)[4], 0u);
  EXPECT_EQ(std::vector<uint8_t>(r1.begin(), r1.end()),
            std::vector<uint8_t>(original.begin() + 32768, original.begin() + 32768 + 16384));
  // Reads and writes of one batch are unordered; the read crossing 65536
  // sees either the hole the write created (zeros) or end of file.
  EXPECT_GE((*done)[3], 65536u - 60000u);
  EXPECT_TRUE(std::equal(r2.begin(), r2.begin() + 5536, original.begin() + 60000));
  auto on_disk = ReadBytes(dir.File("f"));
  ASSERT_EQ(on_disk.size(), 75000u);
  EXPECT_TRUE(std::equal(w1.begin(), w1.end(), on_disk.begin()));
  EXPECT_TRUE(std::equal(w2.begin(), w2.end(), on_disk.begin() + 70000));
  auto empty = f->SubmitBatch({});
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->empty());
}

TEST_P(EngineTest, SizeAndTruncate) {
  TempDir dir;
  auto f = MustOpen(dir.File("f"), Options(GetParam()));
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(*f->Size(), 0u);
  ASSERT_TRUE(f->Truncate(1 << 20).has_value());
  EXPECT_EQ(*f->Size(), 1u << 20);
  std::vector<uint8_t> buf(4096, 0xaa);
  EXPECT_EQ(*f->ReadAt(buf.data(), buf.size(), 4096), 4096u);
  EXPECT_EQ(buf, std::vector<uint8_t>(4096, 0));
  ASSERT_TRUE(f->Truncate(100).has_value());
  EXPECT_EQ(*f->Size(), 100u);
}

TEST_P(EngineTest, ReadOnlyRefusesWrites) {
  TempDir dir;
  WriteFile(dir.File("f"), Pattern(4096, 8));
  OpenOptions o = Options(GetParam(), false);
  o.writable = false;
  auto f = MustOpen(dir.File("f"), o);
  ASSERT_NE(f, nullptr);
  auto data = Pattern(512, 9);
  auto w = f->WriteAt(data.data(), data.size(), 0);
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().code(), Code::kPermissionDenied);
  EXPECT_NE(w.error().message().find(dir.File("f")), std::string::npos) << w.error().message();
  std::vector<uint8_t> buf(100);
  IoRequest mixed[] = {{IoOp::kRead, buf.data(), buf.size(), 0},
                       {IoOp::kWrite, data.data(), data.size(), 0}};
  auto b = f->SubmitBatch(mixed);
  ASSERT_FALSE(b.has_value());
  EXPECT_EQ(b.error().code(), Code::kPermissionDenied);
  auto t = f->Truncate(0);
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().code(), Code::kPermissionDenied);
  EXPECT_EQ(ReadBytes(dir.File("f")), Pattern(4096, 8));
  EXPECT_EQ(*f->ReadAt(buf.data(), buf.size(), 0), buf.size());
}

TEST_P(EngineTest, MissingFileIsNotFound) {
  TempDir dir;
  auto r = OpenBlockFile(dir.File("absent.img"), Options(GetParam(), false));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kNotFound);
  EXPECT_NE(r.error().message().find(dir.File("absent.img")), std::string::npos);
}

TEST_P(EngineTest, DirectoryIsRejected) {
  TempDir dir;
  OpenOptions o = Options(GetParam(), false);
  o.writable = false;
  auto r = OpenBlockFile(dir.path(), o);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
  EXPECT_NE(r.error().message().find("not a regular file"), std::string::npos);
}

TEST_P(EngineTest, InvalidOptions) {
  TempDir dir;
  struct Case {
    void (*mutate)(OpenOptions&);
    const char* message;
  };
  const Case cases[] = {
      {[](OpenOptions& o) { o.queue_depth = 0; }, "queue_depth must be from 1 to 4096, got 0"},
      {[](OpenOptions& o) { o.queue_depth = 5000; },
       "queue_depth must be from 1 to 4096, got 5000"},
      {[](OpenOptions& o) { o.max_chunk = 0; },
       "max_chunk must be from 1 to 1073741824 bytes, got 0"},
      {[](OpenOptions& o) { o.direct = true, o.max_chunk = 1000; },
       "max_chunk must be a multiple of 4096 with O_DIRECT, got 1000"},
      {[](OpenOptions& o) { o.writable = false; }, "create needs a writable file"},
  };
  for (const Case& c : cases) {
    OpenOptions o = Options(GetParam());
    c.mutate(o);
    auto r = OpenBlockFile(dir.File("f"), o);
    ASSERT_FALSE(r.has_value()) << c.message;
    EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
    EXPECT_EQ(r.error().message(), "open " + dir.File("f") + ": " + c.message);
  }
}

TEST_P(EngineTest, RequestBeyondLargestOffsetIsRejected) {
  TempDir dir;
  auto f = MustOpen(dir.File("f"), Options(GetParam()));
  ASSERT_NE(f, nullptr);
  uint8_t b[16] = {};
  auto r = f->ReadAt(b, sizeof b, UINT64_MAX - 4);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
  EXPECT_NE(r.error().message().find("beyond the largest file offset"), std::string::npos);
}

// Buffers for O_DIRECT must be aligned in memory, not only in the file.
struct AlignedBuffer {
  explicit AlignedBuffer(size_t n)
      : data(static_cast<uint8_t*>(std::aligned_alloc(kDirectAlignment, n))), size(n) {}
  ~AlignedBuffer() { std::free(data); }
  uint8_t* data;
  size_t size;
};

TEST_P(EngineTest, DirectAlignedRoundTripAndUnalignedEndOfFile) {
  TempDir dir;
  // A file whose size is not a multiple of the alignment.
  WriteFile(dir.File("f"), Pattern(10000, 10));
  OpenOptions o = Options(GetParam(), false);
  o.direct = true;
  o.max_chunk = 4096;
  o.queue_depth = 2;
  auto r = OpenBlockFile(dir.File("f"), o);
  if (!r.has_value() && r.error().message().find("O_DIRECT") != std::string::npos) {
    GTEST_SKIP() << "temp dir file system has no O_DIRECT: " << r.error().message();
  }
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  auto& f = *r;
  AlignedBuffer buf(16384);
  auto n = f->ReadAt(buf.data, 16384, 0);
  ASSERT_TRUE(n.has_value()) << n.error().ToString();
  EXPECT_EQ(*n, 10000u);
  EXPECT_EQ(std::vector<uint8_t>(buf.data, buf.data + 10000), Pattern(10000, 10));
  EXPECT_EQ(*f->ReadAt(buf.data, 8192, 8192), 10000u - 8192u);
  EXPECT_EQ(*f->ReadAt(buf.data, 4096, 12288), 0u);

  auto data = Pattern(16384, 11);
  std::memcpy(buf.data, data.data(), data.size());
  ASSERT_TRUE(f->WriteAt(buf.data, 16384, 4096).has_value());
  ASSERT_TRUE(f->Flush().has_value());
  std::memset(buf.data, 0, buf.size);
  EXPECT_EQ(*f->ReadAt(buf.data, 16384, 4096), 16384u);
  EXPECT_EQ(std::vector<uint8_t>(buf.data, buf.data + 16384), data);
}

TEST_P(EngineTest, DirectUnalignedIsInvalidArgument) {
  TempDir dir;
  OpenOptions o = Options(GetParam());
  o.direct = true;
  auto r = OpenBlockFile(dir.File("f"), o);
  if (!r.has_value() && r.error().message().find("O_DIRECT") != std::string::npos) {
    GTEST_SKIP() << "temp dir file system has no O_DIRECT: " << r.error().message();
  }
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  AlignedBuffer buf(3 * 4096);
  struct Case {
    uint8_t* buf;
    size_t len;
    uint64_t offset;
  };
  for (auto [p, len, offset] :
       {Case{buf.data, 4096, 512}, Case{buf.data, 4000, 0}, Case{buf.data + 512, 4096, 0}}) {
    auto w = (*r)->WriteAt(p, len, offset);
    ASSERT_FALSE(w.has_value());
    EXPECT_EQ(w.error().code(), Code::kInvalidArgument);
    EXPECT_EQ(
        w.error().message(),
        "write " + dir.File("f") + " at offset " + std::to_string(offset) + " (" +
            std::to_string(len) +
            " bytes): O_DIRECT needs offset, length and buffer address aligned to 4096 bytes");
    auto rd = (*r)->ReadAt(p, len, offset);
    ASSERT_FALSE(rd.has_value());
    EXPECT_EQ(rd.error().code(), Code::kInvalidArgument);
  }
  EXPECT_TRUE((*r)->WriteAt(buf.data, 4096, 8192).has_value());
}

// The oracle test: the same seeded random sequence of writes, reads, batches,
// truncates and flushes against both engines; every result and the final
// files must agree. FERRY_TEST_SEED=<n> replays one seed.
TEST(EngineComparisonTest, RandomSequencesAgree) {
  std::vector<uint64_t> seeds;
  if (const char* replay = std::getenv("FERRY_TEST_SEED")) {
    seeds.push_back(std::strtoull(replay, nullptr, 10));
  } else {
    for (uint64_t s = 1; s <= 10; ++s) seeds.push_back(s);
  }
  for (uint64_t seed : seeds) {
    SCOPED_TRACE("seed " + std::to_string(seed) +
                 " (replay with FERRY_TEST_SEED=" + std::to_string(seed) + ")");
    std::mt19937_64 rng(seed);
    auto uniform = [&rng](uint64_t lo, uint64_t hi) {
      return std::uniform_int_distribution<uint64_t>(lo, hi)(rng);
    };
    TempDir dir;
    OpenOptions uring_options = Options(IoEngine::kIoUring);
    uring_options.queue_depth = static_cast<unsigned>(uniform(1, 8));
    const size_t chunks[] = {512, 4096, 10000, 65536, 1 << 20};
    uring_options.max_chunk = chunks[uniform(0, 4)];
    auto uring = MustOpen(dir.File("uring"), uring_options);
    auto sync = MustOpen(dir.File("sync"), Options(IoEngine::kSync));
    ASSERT_TRUE(uring && sync);

    constexpr uint64_t kSpan = 2 << 20;  // offsets fall in the first 2 MiB
    for (int step = 0; step < 150; ++step) {
      SCOPED_TRACE("step " + std::to_string(step));
      uint64_t kind = uniform(0, 99);
      if (kind < 35) {
        auto data = Pattern(uniform(1, 300000), rng());
        uint64_t offset = uniform(0, kSpan);
        ASSERT_TRUE(uring->WriteAt(data.data(), data.size(), offset).has_value());
        ASSERT_TRUE(sync->WriteAt(data.data(), data.size(), offset).has_value());
      } else if (kind < 70) {
        size_t len = uniform(0, 300000);
        uint64_t offset = uniform(0, kSpan + 100000);
        std::vector<uint8_t> a(len, 0x11), b(len, 0x22);
        auto na = uring->ReadAt(a.data(), len, offset);
        auto nb = sync->ReadAt(b.data(), len, offset);
        ASSERT_TRUE(na.has_value() && nb.has_value());
        ASSERT_EQ(*na, *nb) << "read " << len << " at " << offset;
        ASSERT_TRUE(std::equal(a.begin(), a.begin() + *na, b.begin()));
      } else if (kind < 88) {
        // A batch of requests in distinct 128 KiB slots, so none overlap.
        // Reads end within the current file: a read past it would race a
        // write that extends the file, and a batch has no order.
        const uint64_t file_size = *sync->Size();
        std::vector<uint64_t> slots(16);
        for (uint64_t i = 0; i < slots.size(); ++i) slots[i] = i;
        std::shuffle(slots.begin(), slots.end(), rng);
        size_t count = uniform(1, 6);
        std::vector<IoRequest> ra, rb;
        std::vector<std::vector<uint8_t>> bufs_a, bufs_b;
        for (size_t i = 0; i < count; ++i) {
          IoRequest r;
          r.op = uniform(0, 1) ? IoOp::kRead : IoOp::kWrite;
          r.len = uniform(0, 64 << 10);
          r.offset = slots[i] * (128 << 10) + uniform(0, 64 << 10);
          if (r.op == IoOp::kRead)
            r.len = std::min<uint64_t>(r.len, file_size - std::min(file_size, r.offset));
          ra.push_back(r);
          rb.push_back(r);
          if (r.op == IoOp::kWrite) {
            bufs_a.push_back(Pattern(r.len, rng()));
            bufs_b.push_back(bufs_a.back());
          } else {
            bufs_a.emplace_back(r.len, 0x33);
            bufs_b.emplace_back(r.len, 0x44);
          }
        }
        for (size_t i = 0; i < count; ++i) {  // the vectors are complete: data() is stable
          ra[i].buf = bufs_a[i].data();
          rb[i].buf = bufs_b[i].data();
        }
        auto da = uring->SubmitBatch(ra);
        auto db = sync->SubmitBatch(rb);
        ASSERT_TRUE(da.has_value() && db.has_value());
        ASSERT_EQ(*da, *db);
        for (size_t i = 0; i < count; ++i) {
          if (ra[i].op == IoOp::kRead) {
            ASSERT_TRUE(
                std::equal(bufs_a[i].begin(), bufs_a[i].begin() + (*da)[i], bufs_b[i].begin()));
          }
        }
      } else if (kind < 97) {
        uint64_t size = uniform(0, kSpan);
        ASSERT_TRUE(uring->Truncate(size).has_value());
        ASSERT_TRUE(sync->Truncate(size).has_value());
      } else {
        ASSERT_TRUE(uring->Flush().has_value());
        ASSERT_TRUE(sync->Flush().has_value());
      }
      ASSERT_EQ(*uring->Size(), *sync->Size());
    }
    ASSERT_TRUE(ReadBytes(dir.File("uring")) == ReadBytes(dir.File("sync")));
  }
}

}  // namespace
}  // namespace storage
