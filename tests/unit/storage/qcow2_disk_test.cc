// qcow2 through ferry alone: create, read/write/discard/zero against a byte
// model, backing chains, MapExtent, refcount growth, commit and rebase.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qcow2_test_util.h"
#include "storage/qcow2.h"

namespace storage {
namespace {

using base::Code;
using config::DiskFormat;
using testing::FirstDiff;
using testing::Pattern;
using testing::ReadAll;
using testing::TempDir;

struct Param {
  uint32_t cluster_size;
  IoEngine engine;
};

std::string Name(const ::testing::TestParamInfo<Param>& info) {
  return std::to_string(info.param.cluster_size / 1024) + "K" +
         (info.param.engine == IoEngine::kIoUring ? "IoUring" : "Sync");
}

class Qcow2DiskTest : public ::testing::TestWithParam<Param> {};

INSTANTIATE_TEST_SUITE_P(Clusters, Qcow2DiskTest,
                         ::testing::Values(Param{4096, IoEngine::kIoUring},
                                           Param{65536, IoEngine::kIoUring},
                                           Param{65536, IoEngine::kSync},
                                           Param{2 << 20, IoEngine::kIoUring}),
                         Name);

std::unique_ptr<Qcow2Disk> MustOpen(const std::string& path, bool ro,
                                    IoEngine engine = IoEngine::kIoUring) {
  auto d = OpenQcow2Disk(path, ro, engine);
  EXPECT_TRUE(d.has_value()) << d.error().ToString();
  return d ? std::move(*d) : nullptr;
}

TEST_P(Qcow2DiskTest, CreateOpenReadsZeros) {
  TempDir dir;
  Qcow2CreateOptions o;
  o.size = 8 << 20;
  o.cluster_size = GetParam().cluster_size;
  ASSERT_TRUE(CreateQcow2(dir.File("a.qcow2"), o).has_value());
  auto again = CreateQcow2(dir.File("a.qcow2"), o);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code(), Code::kAlreadyExists);
  auto d = MustOpen(dir.File("a.qcow2"), false, GetParam().engine);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->size(), 8u << 20);
  EXPECT_EQ(d->info().cluster_size, GetParam().cluster_size);
  auto all = ReadAll(*d);
  EXPECT_EQ(FirstDiff(all, std::vector<uint8_t>(8 << 20, 0)), -1);
  auto e = d->MapExtent(0, UINT64_MAX);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->kind, ExtentKind::kUnallocated);
  EXPECT_EQ(e->length, 8u << 20);
}

TEST_P(Qcow2DiskTest, RandomIoMatchesModelAcrossReopen) {
  TempDir dir;
  const uint64_t size = 24 << 20;
  Qcow2CreateOptions o;
  o.size = size;
  o.cluster_size = GetParam().cluster_size;
  ASSERT_TRUE(CreateQcow2(dir.File("a.qcow2"), o).has_value());
  std::vector<uint8_t> model(size, 0);
  {
    auto d = MustOpen(dir.File("a.qcow2"), false, GetParam().engine);
    ASSERT_TRUE(d);
    testing::RandomIo(*d, model, 7, o.cluster_size >= (2u << 20) ? 60 : 300, o.cluster_size);
    EXPECT_EQ(FirstDiff(ReadAll(*d), model), -1) << "before reopen";
    ASSERT_TRUE(d->Flush().has_value());
  }
  auto d = MustOpen(dir.File("a.qcow2"), true, GetParam().engine);
  ASSERT_TRUE(d);
  EXPECT_EQ(FirstDiff(ReadAll(*d), model), -1) << "after reopen";
}

TEST_P(Qcow2DiskTest, BackingChainThreeDeep) {
  TempDir dir;
  const uint64_t size = 6 << 20;
  const uint32_t cs = GetParam().cluster_size;
  // base.raw <- mid.qcow2 <- upper.qcow2 <- top.qcow2
  auto base_bytes = Pattern(size, 1);
  ferry_test::WriteFile(dir.File("base.raw"), base_bytes);
  std::vector<uint8_t> model = base_bytes;
  Qcow2CreateOptions o;
  o.cluster_size = cs;
  o.backing_file = "base.raw";
  o.backing_format = DiskFormat::kRaw;
  ASSERT_TRUE(CreateQcow2(dir.File("mid.qcow2"), o).has_value());
  o.backing_file = "mid.qcow2";
  o.backing_format = DiskFormat::kQcow2;
  ASSERT_TRUE(CreateQcow2(dir.File("upper.qcow2"), o).has_value());
  o.backing_file = "upper.qcow2";
  ASSERT_TRUE(CreateQcow2(dir.File("top.qcow2"), o).has_value());
  int seed = 10;
  for (const char* layer : {"mid.qcow2", "upper.qcow2", "top.qcow2"}) {
    auto d = MustOpen(dir.File(layer), false);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->size(), size);
    // Partial-cluster writes must copy the rest of the cluster from below.
    testing::RandomIo(*d, model, seed++, 60, cs);
    ASSERT_TRUE(d->Flush().has_value());
  }
  auto top = MustOpen(dir.File("top.qcow2"), true);
  ASSERT_TRUE(top);
  EXPECT_EQ(FirstDiff(ReadAll(*top), model), -1);
  ASSERT_NE(top->backing(), nullptr);
  EXPECT_EQ(top->info().backing_path, dir.File("upper.qcow2"));
  EXPECT_EQ(top->info().backing_format, DiskFormat::kQcow2);
}

TEST(Qcow2Disk, PartialWriteCopiesFromBacking) {
  TempDir dir;
  auto base_bytes = Pattern(1 << 20, 3);
  ferry_test::WriteFile(dir.File("base.raw"), base_bytes);
  Qcow2CreateOptions o;
  o.backing_file = dir.File("base.raw");  // absolute works too
  o.backing_format = DiskFormat::kRaw;
  ASSERT_TRUE(CreateQcow2(dir.File("top.qcow2"), o).has_value());
  auto d = MustOpen(dir.File("top.qcow2"), false);
  ASSERT_TRUE(d);
  auto data = Pattern(512, 4);
  ASSERT_TRUE(d->Write(data.data(), 512, 70000).has_value());
  std::copy(data.begin(), data.end(), base_bytes.begin() + 70000);
  EXPECT_EQ(FirstDiff(ReadAll(*d), base_bytes), -1);
  // The cluster is now the top layer's; its neighbours still fall through.
  auto e = d->MapExtent(65536, UINT64_MAX);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->kind, ExtentKind::kData);
  EXPECT_EQ(e->length, 65536u);
  e = d->MapExtent(0, UINT64_MAX);
  EXPECT_EQ(e->kind, ExtentKind::kUnallocated);
  EXPECT_EQ(e->length, 65536u);
  // Discard with a backing file leaves zeros, not the backing data.
  ASSERT_TRUE(d->Discard(0, 131072).has_value());
  std::fill(base_bytes.begin(), base_bytes.begin() + 131072, 0);
  EXPECT_EQ(FirstDiff(ReadAll(*d), base_bytes), -1);
  e = d->MapExtent(0, UINT64_MAX);
  EXPECT_EQ(e->kind, ExtentKind::kZero);
  EXPECT_EQ(e->length, 131072u);
}

TEST(Qcow2Disk, MapExtentKinds) {
  TempDir dir;
  Qcow2CreateOptions o;
  o.size = 1 << 20;
  ASSERT_TRUE(CreateQcow2(dir.File("a.qcow2"), o).has_value());
  auto d = MustOpen(dir.File("a.qcow2"), false);
  ASSERT_TRUE(d);
  auto data = Pattern(2 * 65536, 5);
  ASSERT_TRUE(d->Write(data.data(), data.size(), 65536).has_value());
  ASSERT_TRUE(d->WriteZeroes(3 * 65536, 65536).has_value());
  // Zero-flag only after the write of the first data; an explicit zero write
  // over nothing without a backing file stays unallocated (reads zero).
  auto e = d->MapExtent(0, UINT64_MAX);
  EXPECT_EQ(e->kind, ExtentKind::kUnallocated);
  EXPECT_EQ(e->length, 65536u);
  e = d->MapExtent(65536 + 512, UINT64_MAX);
  EXPECT_EQ(e->kind, ExtentKind::kData);
  EXPECT_EQ(e->length, 2 * 65536u - 512);
  e = d->MapExtent(65536, 1000);
  EXPECT_EQ(e->length, 1000u);
  // Zeros over allocated data become a zero cluster.
  ASSERT_TRUE(d->WriteZeroes(65536, 65536).has_value());
  e = d->MapExtent(65536, UINT64_MAX);
  EXPECT_EQ(e->kind, ExtentKind::kZero);
  EXPECT_EQ(e->length, 65536u);
  e = d->MapExtent(1 << 20, 10);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->length, 0u);
  EXPECT_FALSE(d->MapExtent((1 << 20) + 512, 10).has_value());
}

TEST(Qcow2Disk, ReadOnlyAndRangeErrors) {
  TempDir dir;
  Qcow2CreateOptions o;
  o.size = 1 << 20;
  ASSERT_TRUE(CreateQcow2(dir.File("a.qcow2"), o).has_value());
  auto d = MustOpen(dir.File("a.qcow2"), true);
  ASSERT_TRUE(d);
  uint8_t b[512] = {};
  EXPECT_EQ(d->Write(b, 512, 0).error().code(), Code::kPermissionDenied);
  EXPECT_EQ(d->Discard(0, 512).error().code(), Code::kPermissionDenied);
  EXPECT_EQ(d->Read(b, 512, 1 << 20).error().code(), Code::kOutOfRange);
  EXPECT_TRUE(d->Read(b, 0, 1 << 20).has_value());
  Qcow2CreateOptions bad = o;
  bad.cluster_size = 3000;
  EXPECT_EQ(CreateQcow2(dir.File("b.qcow2"), bad).error().code(), Code::kInvalidArgument);
  bad = o;
  bad.size = 1000;
  EXPECT_EQ(CreateQcow2(dir.File("b.qcow2"), bad).error().code(), Code::kInvalidArgument);
  EXPECT_EQ(OpenQcow2Disk(dir.File("missing.qcow2"), true).error().code(), Code::kNotFound);
}

// Discard gives the freed clusters' space back to the file system once the
// change is durable (Flush punches them out); the file keeps its size, the
// image stays consistent, and later writes (appended) are unaffected.
TEST(Qcow2Disk, DiscardPunchesFreedClustersOutOfTheFile) {
  TempDir dir;
  Qcow2CreateOptions o;
  o.size = 16 << 20;
  const std::string path = dir.File("a.qcow2");
  ASSERT_TRUE(CreateQcow2(path, o).has_value());
  auto d = MustOpen(path, false);
  ASSERT_TRUE(d);
  auto data = Pattern(8 << 20, 31);
  ASSERT_TRUE(d->Write(data.data(), data.size(), 0).has_value());
  ASSERT_TRUE(d->Flush().has_value());
  struct stat full;
  ASSERT_EQ(stat(path.c_str(), &full), 0);

  ASSERT_TRUE(d->Discard(1 << 20, 6 << 20).has_value());
  ASSERT_TRUE(d->Flush().has_value());
  struct stat punched;
  ASSERT_EQ(stat(path.c_str(), &punched), 0);
  EXPECT_EQ(punched.st_size, full.st_size);
  EXPECT_LE(punched.st_blocks * 512, full.st_blocks * 512 - (6 << 20) + (256 << 10))
      << "6 MiB of freed clusters should be punched out";

  std::fill(data.begin() + (1 << 20), data.begin() + (7 << 20), 0);
  auto more = Pattern(2 << 20, 32);
  ASSERT_TRUE(d->Write(more.data(), more.size(), 2 << 20).has_value());
  std::copy(more.begin(), more.end(), data.begin() + (2 << 20));
  ASSERT_TRUE(d->Flush().has_value());
  d.reset();
  d = MustOpen(path, true);
  ASSERT_TRUE(d);
  std::vector<uint8_t> back(data.size());
  ASSERT_TRUE(d->Read(back.data(), back.size(), 0).has_value());
  EXPECT_EQ(FirstDiff(back, data), -1);
  if (testing::HaveQemuImg()) testing::ExpectQemuCheckClean(path);
}

// Allocation past the refcount table's reach: an image whose file was
// extended (sparse) far beyond what one refcount table cluster covers makes
// the next allocation grow the table and add blocks.
TEST(Qcow2Disk, RefcountTableGrows) {
  TempDir dir;
  Qcow2CreateOptions o;
  o.size = 64 << 20;
  o.cluster_size = 4096;
  std::string path = dir.File("a.qcow2");
  ASSERT_TRUE(CreateQcow2(path, o).has_value());
  // One 4 KiB table cluster: 512 blocks x 2048 clusters x 4 KiB = 4 GiB.
  ASSERT_EQ(truncate(path.c_str(), 5ll << 30), 0);
  std::vector<uint8_t> model(o.size, 0);
  {
    auto d = MustOpen(path, false);
    ASSERT_TRUE(d);
    testing::RandomIo(*d, model, 21, 200, o.cluster_size);
    ASSERT_TRUE(d->Flush().has_value());
    EXPECT_EQ(FirstDiff(ReadAll(*d), model), -1);
  }
  auto d = MustOpen(path, false);
  ASSERT_TRUE(d);
  EXPECT_EQ(FirstDiff(ReadAll(*d), model), -1);
  testing::RandomIo(*d, model, 22, 50, o.cluster_size);
  ASSERT_TRUE(d->Flush().has_value());
  EXPECT_EQ(FirstDiff(ReadAll(*d), model), -1);
  if (testing::HaveQemuImg()) testing::ExpectQemuCheckClean(path);
}

TEST(Qcow2Disk, CommitIntoBackingAndRebase) {
  TempDir dir;
  const uint64_t size = 4 << 20;
  Qcow2CreateOptions o;
  o.size = size;
  ASSERT_TRUE(CreateQcow2(dir.File("base.qcow2"), o).has_value());
  std::vector<uint8_t> model(size, 0);
  {
    auto d = MustOpen(dir.File("base.qcow2"), false);
    testing::RandomIo(*d, model, 31, 40, o.cluster_size);
  }
  Qcow2CreateOptions ov;
  ov.backing_file = "base.qcow2";
  ASSERT_TRUE(CreateQcow2(dir.File("mid.qcow2"), ov).has_value());
  {
    auto d = MustOpen(dir.File("mid.qcow2"), false);
    EXPECT_EQ(d->size(), size);
    testing::RandomIo(*d, model, 32, 40, o.cluster_size);
  }
  ov.backing_file = "mid.qcow2";
  ASSERT_TRUE(CreateQcow2(dir.File("top.qcow2"), ov).has_value());
  {
    auto d = MustOpen(dir.File("top.qcow2"), false);
    testing::RandomIo(*d, model, 33, 40, o.cluster_size);
  }
  // Delete the middle layer: commit it into base, point top at base.
  ASSERT_TRUE(CommitQcow2(dir.File("mid.qcow2")).has_value());
  ASSERT_TRUE(SetQcow2Backing(dir.File("top.qcow2"), "base.qcow2", DiskFormat::kQcow2).has_value());
  ASSERT_EQ(unlink(dir.File("mid.qcow2").c_str()), 0);
  auto info = ReadQcow2Info(dir.File("top.qcow2"));
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->backing_file, "base.qcow2");
  auto top = MustOpen(dir.File("top.qcow2"), true);
  ASSERT_TRUE(top);
  EXPECT_EQ(FirstDiff(ReadAll(*top), model), -1);
  auto commit_base = CommitQcow2(dir.File("base.qcow2"));
  EXPECT_EQ(commit_base.error().code(), Code::kFailedPrecondition);
  if (testing::HaveQemuImg()) {
    testing::ExpectQemuCheckClean(dir.File("base.qcow2"));
    testing::ExpectQemuCheckClean(dir.File("top.qcow2"));
  }
}

TEST(Qcow2Disk, OpenDiskDispatches) {
  TempDir dir;
  Qcow2CreateOptions o;
  o.size = 1 << 20;
  ASSERT_TRUE(CreateQcow2(dir.File("a.qcow2"), o).has_value());
  auto d = OpenDisk(dir.File("a.qcow2"), DiskFormat::kQcow2, true);
  ASSERT_TRUE(d.has_value()) << d.error().ToString();
  EXPECT_EQ((*d)->size(), 1u << 20);
  // The same file as raw is the container bytes.
  auto r = OpenDisk(dir.File("a.qcow2"), DiskFormat::kRaw, true);
  ASSERT_TRUE(r.has_value());
  EXPECT_GT((*r)->size(), 0u);
}

}  // namespace
}  // namespace storage
