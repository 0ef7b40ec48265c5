// StreamLayerRange: a three-layer chain base <- X <- Y, X streamed into Y and
// Y rebased onto base must show exactly what it showed before, at every
// step, and pass qemu-img check.
#include "storage/layer_stream.h"

#include <gtest/gtest.h>

#include "qcow2_test_util.h"
#include "storage/qcow2.h"

namespace storage::testing {
namespace {

constexpr uint64_t kSize = 8u << 20;
constexpr uint64_t kCluster = 64u << 10;

struct Chain {
  std::string base, x, y;
  std::vector<uint8_t> model;  // what Y shows
};

// base (raw, a pattern with a hole) <- X (random I/O: data, zero clusters,
// discards) <- Y (random I/O). `raw_base` false: base is qcow2.
Chain MakeChain(const TempDir& dir, uint64_t seed, bool raw_base) {
  Chain c;
  c.model = Pattern(kSize, seed);
  std::fill(c.model.begin() + kSize / 2, c.model.begin() + kSize / 2 + (1 << 20), 0);
  if (raw_base) {
    c.base = dir.File("base.img");
    WriteFile(c.base, c.model);
  } else {
    c.base = dir.File("base.qcow2");
    EXPECT_TRUE(CreateQcow2(c.base, {.size = kSize, .backing_file = ""}).has_value());
    auto b = OpenQcow2Disk(c.base, false);
    EXPECT_TRUE(b.has_value());
    EXPECT_TRUE((*b)->Write(c.model.data(), kSize / 2, 0).has_value());
    std::fill(c.model.begin() + kSize / 2, c.model.end(), 0);
    EXPECT_TRUE((*b)->Flush().has_value());
  }
  const auto base_format = raw_base ? config::DiskFormat::kRaw : config::DiskFormat::kQcow2;
  c.x = dir.File("x.qcow2");
  c.y = dir.File("y.qcow2");
  Qcow2CreateOptions xo;
  xo.backing_file = raw_base ? "base.img" : "base.qcow2";
  xo.backing_format = base_format;
  EXPECT_TRUE(CreateQcow2(c.x, xo).has_value());
  {
    auto x = OpenQcow2Disk(c.x, false);
    EXPECT_TRUE(x.has_value());
    RandomIo(**x, c.model, seed + 1, 60, kCluster);
  }
  Qcow2CreateOptions yo;
  yo.backing_file = "x.qcow2";
  EXPECT_TRUE(CreateQcow2(c.y, yo).has_value());
  {
    auto y = OpenQcow2Disk(c.y, false);
    EXPECT_TRUE(y.has_value());
    RandomIo(**y, c.model, seed + 2, 40, kCluster);
  }
  return c;
}

class LayerStreamTest : public ::testing::TestWithParam<bool> {};

TEST_P(LayerStreamTest, StreamThenRebaseKeepsContents) {
  const bool raw_base = GetParam();
  for (uint64_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    TempDir dir;
    Chain c = MakeChain(dir, seed, raw_base);
    {
      auto x = OpenQcow2Disk(c.x, true);
      auto y = OpenQcow2Disk(c.y, false);
      ASSERT_TRUE(x.has_value() && y.has_value());
      ASSERT_EQ(FirstDiff(ReadAll(**y), c.model), -1);
      // In chunks, with a guest-like write between chunks: the stream must
      // not overwrite it.
      for (uint64_t off = 0; off < kSize; off += kStreamChunkBytes / 2) {
        auto n = StreamLayerRange(**x, **y, off, kStreamChunkBytes / 2, /*copy_zeros=*/true);
        ASSERT_TRUE(n.has_value()) << n.error().ToString();
        auto data = Pattern(4096, seed + off);
        const uint64_t at = (off + 3 * kStreamChunkBytes / 2) % kSize;
        ASSERT_TRUE((*y)->Write(data.data(), data.size(), at).has_value());
        std::copy(data.begin(), data.end(), c.model.begin() + long(at));
        ASSERT_EQ(FirstDiff(ReadAll(**y), c.model), -1) << "after the chunk at " << off;
      }
      // Everything X stores is now in Y: a second pass writes nothing.
      auto again = StreamLayerRange(**x, **y, 0, kSize, true);
      ASSERT_TRUE(again.has_value());
      EXPECT_EQ(*again, 0u);
      ASSERT_TRUE((*y)->Flush().has_value());
    }
    auto base_format = raw_base ? config::DiskFormat::kRaw : config::DiskFormat::kQcow2;
    ASSERT_TRUE(
        SetQcow2Backing(c.y, raw_base ? "base.img" : "base.qcow2", base_format).has_value());
    ASSERT_EQ(::unlink(c.x.c_str()), 0);
    auto y = OpenQcow2Disk(c.y, true);
    ASSERT_TRUE(y.has_value()) << y.error().ToString();
    EXPECT_EQ(FirstDiff(ReadAll(**y), c.model), -1);
    if (HaveQemuImg()) ExpectQemuCheckClean(c.y);
  }
}

// Deleting the bottom layer: a raw base streamed into its child (holes need
// no copy, since the child will have no backing file), then the child stands
// alone.
TEST(LayerStreamTest, StreamBaseIntoChildWithoutZeros) {
  TempDir dir;
  Chain c = MakeChain(dir, 7, /*raw_base=*/true);
  {
    auto base = OpenRawDisk(c.base, true);
    auto x = OpenQcow2Disk(c.x, false);
    ASSERT_TRUE(base.has_value() && x.has_value());
    auto n = StreamLayerRange(**base, **x, 0, kSize, /*copy_zeros=*/false);
    ASSERT_TRUE(n.has_value()) << n.error().ToString();
    EXPECT_GT(*n, 0u);
    ASSERT_TRUE((*x)->Flush().has_value());
  }
  ASSERT_TRUE(SetQcow2Backing(c.x, "", config::DiskFormat::kRaw).has_value());
  ASSERT_EQ(::unlink(c.base.c_str()), 0);
  auto y = OpenQcow2Disk(c.y, true);
  ASSERT_TRUE(y.has_value()) << y.error().ToString();
  EXPECT_EQ(FirstDiff(ReadAll(**y), c.model), -1);
  if (HaveQemuImg()) {
    ExpectQemuCheckClean(c.x);
    ExpectQemuCheckClean(c.y);
  }
}

TEST(LayerStreamTest, RefusesReadOnlyDestination) {
  TempDir dir;
  Chain c = MakeChain(dir, 9, true);
  auto x = OpenQcow2Disk(c.x, true);
  auto y = OpenQcow2Disk(c.y, true);
  ASSERT_TRUE(x.has_value() && y.has_value());
  auto n = StreamLayerRange(**x, **y, 0, kSize, true);
  ASSERT_FALSE(n.has_value());
  EXPECT_EQ(n.error().code(), base::Code::kPermissionDenied);
}

INSTANTIATE_TEST_SUITE_P(Base, LayerStreamTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return i.param ? "Raw" : "Qcow2";
                         });

}  // namespace
}  // namespace storage::testing
