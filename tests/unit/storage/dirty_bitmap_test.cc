#include "storage/dirty_bitmap.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "base/crc32c.h"
#include "base/le.h"
#include "test_util.h"

namespace storage {
namespace {

using base::Code;
using testing::TempDir;

constexpr uint64_t kG = 64 << 10;

DirtyBitmap Make(uint64_t size, uint64_t gran = kG) {
  auto bm = DirtyBitmap::Create(size, gran);
  EXPECT_TRUE(bm.has_value()) << bm.error().ToString();
  return std::move(bm).value();
}

TEST(DirtyBitmapTest, RejectsBadGeometry) {
  EXPECT_EQ(DirtyBitmap::Create(1 << 20, 0).error().code(), Code::kInvalidArgument);
  EXPECT_EQ(DirtyBitmap::Create(1 << 20, 3000).error().code(), Code::kInvalidArgument);
  EXPECT_EQ(DirtyBitmap::Create(1 << 20, 256).error().code(), Code::kInvalidArgument);
  EXPECT_EQ(DirtyBitmap::Create(0, kG).error().code(), Code::kInvalidArgument);
  EXPECT_TRUE(DirtyBitmap::Create(1, 512).has_value());
}

TEST(DirtyBitmapTest, SetMarksEveryTouchedBlock) {
  DirtyBitmap bm = Make(10 * kG);
  EXPECT_EQ(bm.block_count(), 10u);
  EXPECT_EQ(bm.Set(kG - 1, 2), 2u);  // straddles blocks 0 and 1
  EXPECT_EQ(bm.Set(0, 1), 0u);       // already dirty
  EXPECT_TRUE(bm.TestAll(0, 2 * kG));
  EXPECT_FALSE(bm.TestAny(2 * kG, 8 * kG));
  EXPECT_EQ(bm.dirty_blocks(), 2u);
  EXPECT_EQ(bm.dirty_bytes(), 2 * kG);
  EXPECT_EQ(bm.Set(0, 0), 0u);          // empty range
  EXPECT_EQ(bm.Set(100 * kG, kG), 0u);  // past the end: clipped away
}

TEST(DirtyBitmapTest, LastBlockIsPartialAndClipped) {
  DirtyBitmap bm = Make(3 * kG + 512);
  EXPECT_EQ(bm.block_count(), 4u);
  bm.Set(3 * kG, 512);
  EXPECT_EQ(bm.dirty_bytes(), 512u);
  auto run = bm.NextDirty(0);
  ASSERT_TRUE(run);
  EXPECT_EQ(run->offset, 3 * kG);
  EXPECT_EQ(run->length, 512u);
  bm.SetAll();
  EXPECT_EQ(bm.dirty_bytes(), 3 * kG + 512);
}

TEST(DirtyBitmapTest, NextDirtyFindsRunsAcrossWords) {
  DirtyBitmap bm = Make(300 * kG);
  bm.Set(5 * kG, 3 * kG);    // blocks 5..7
  bm.Set(62 * kG, 70 * kG);  // blocks 62..131: crosses two word boundaries
  bm.Set(299 * kG, kG);      // last block
  auto r = bm.NextDirty(0);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->offset, 5 * kG);
  EXPECT_EQ(r->length, 3 * kG);
  r = bm.NextDirty(r->offset + r->length);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->offset, 62 * kG);
  EXPECT_EQ(r->length, 70 * kG);
  // max_len splits a run; a start inside a block rounds down to it.
  r = bm.NextDirty(63 * kG + 100, 4 * kG);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->offset, 63 * kG);
  EXPECT_EQ(r->length, 4 * kG);
  r = bm.NextDirty(132 * kG);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->offset, 299 * kG);
  EXPECT_FALSE(bm.NextDirty(300 * kG));
  EXPECT_FALSE(Make(kG).NextDirty(0));
}

TEST(DirtyBitmapTest, TakeClearsAndReturnsRuns) {
  DirtyBitmap bm = Make(16 * kG);
  bm.Set(kG, kG);
  bm.Set(3 * kG, 2 * kG);
  bm.Set(10 * kG, kG);
  auto runs = bm.Take(0, 8 * kG);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].offset, kG);
  EXPECT_EQ(runs[0].length, kG);
  EXPECT_EQ(runs[1].offset, 3 * kG);
  EXPECT_EQ(runs[1].length, 2 * kG);
  EXPECT_FALSE(bm.TestAny(0, 8 * kG));
  EXPECT_TRUE(bm.TestAny(10 * kG, 1));
  EXPECT_EQ(bm.dirty_blocks(), 1u);
  bm.Clear(10 * kG, kG);
  EXPECT_EQ(bm.dirty_blocks(), 0u);
  EXPECT_TRUE(bm.Take(0, 16 * kG).empty());
}

TEST(DirtyBitmapTest, MergeOrsAndChecksGeometry) {
  DirtyBitmap a = Make(8 * kG);
  DirtyBitmap b = Make(8 * kG);
  a.Set(0, kG);
  b.Set(0, 2 * kG);
  b.Set(7 * kG, 1);
  ASSERT_TRUE(a.Merge(b).has_value());
  EXPECT_EQ(a.dirty_blocks(), 3u);
  EXPECT_TRUE(a.TestAll(0, 2 * kG));
  EXPECT_EQ(a.Merge(Make(9 * kG)).error().code(), Code::kInvalidArgument);
  EXPECT_EQ(a.Merge(Make(8 * kG, 4096)).error().code(), Code::kInvalidArgument);
}

TEST(DirtyBitmapTest, ConcurrentSetAndTakeKeepExactCount) {
  DirtyBitmap bm = Make(4096 * 512, 512);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&bm, t] {
      for (uint64_t b = t; b < 4096; b += 4) bm.Set(b * 512, 512);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bm.dirty_blocks(), 4096u);
  threads.clear();
  std::atomic<uint64_t> taken{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (uint64_t off = 0; off < 4096 * 512; off += 64 * 512) {
        for (const ByteRun& r : bm.Take(off, 64 * 512)) taken += r.length / 512;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(taken.load(), 4096u);  // every bit taken exactly once
  EXPECT_EQ(bm.dirty_blocks(), 0u);
}

TEST(DirtyBitmapTest, EncodeDecodeRoundTrip) {
  DirtyBitmap bm = Make(1000 * kG + 4096);
  for (uint64_t b = 0; b < 1001; b += 7) bm.Set(b * kG, 1);
  auto back = DirtyBitmap::Decode(bm.Encode());
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_EQ(back->disk_size(), bm.disk_size());
  EXPECT_EQ(back->granularity(), bm.granularity());
  EXPECT_EQ(back->dirty_blocks(), bm.dirty_blocks());
  EXPECT_EQ(back->Encode(), bm.Encode());
}

TEST(DirtyBitmapTest, GoldenHeader) {
  DirtyBitmap bm = Make(2 * kG);
  bm.Set(kG, 1);
  std::string e = bm.Encode();
  ASSERT_EQ(e.size(), 40u + 8 + 4);
  const std::string header("FDBM\x01\x00\x00\x00", 8);
  EXPECT_EQ(e.substr(0, 8), header);
  EXPECT_EQ(uint8_t(e[40]), 0x02);  // block 1 dirty
}

TEST(DirtyBitmapTest, EveryCorruptionIsDetected) {
  DirtyBitmap bm = Make(200 * kG);
  bm.Set(3 * kG, 50 * kG);
  const std::string good = bm.Encode();
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = char(bad[i] ^ 0x10);
    auto r = DirtyBitmap::Decode(bad);
    ASSERT_FALSE(r.has_value()) << "flip at byte " << i << " went unnoticed";
    EXPECT_EQ(r.error().code(), Code::kDataLoss) << "byte " << i << ": " << r.error().ToString();
  }
  for (size_t len : {size_t(0), size_t(10), size_t(43), good.size() - 1}) {
    auto r = DirtyBitmap::Decode(good.substr(0, len));
    ASSERT_FALSE(r.has_value()) << "truncated to " << len;
    EXPECT_EQ(r.error().code(), Code::kDataLoss);
  }
  EXPECT_EQ(DirtyBitmap::Decode(good + "x").error().code(), Code::kDataLoss);
}

TEST(DirtyBitmapTest, FutureVersionIsRefusedNotGuessed) {
  std::string e = Make(kG).Encode();
  e[4] = 2;
  uint8_t crc[4];
  base::PutLe32(crc, base::Crc32c(e.data(), e.size() - 4));
  e.replace(e.size() - 4, 4, reinterpret_cast<const char*>(crc), 4);
  auto r = DirtyBitmap::Decode(e);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kFailedPrecondition);
}

TEST(DirtyBitmapTest, SaveLoad) {
  TempDir dir;
  DirtyBitmap bm = Make(64 * kG);
  bm.Set(5 * kG, 9 * kG);
  ASSERT_TRUE(bm.Save(dir.File("bm")).has_value());
  auto back = DirtyBitmap::Load(dir.File("bm"));
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_EQ(back->dirty_blocks(), 9u);
  auto missing = DirtyBitmap::Load(dir.File("nope"));
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), Code::kNotFound);
}

}  // namespace
}  // namespace storage
