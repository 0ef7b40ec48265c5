// CheckDiskImage: what `ferry vm create` and an offline move run on an image
// before accepting it. A sound chain passes; a truncated image whose tables
// point past its end, a damaged backing layer, a loop and (for a writable
// disk) an image marked corrupt are refused with the file and the problem.
#include "storage/image_check.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>

#include "qcow2_format.h"
#include "qcow2_test_util.h"

namespace storage {
namespace {

using base::Code;
using testing::Pattern;
using testing::TempDir;

ImageCheckOptions Writable() {
  ImageCheckOptions o;
  o.writable = true;
  return o;
}

// 4 MiB, 64 KiB clusters, data in clusters 0, 10 and 40 (so data clusters
// lie well after the metadata and a truncation leaves L2 entries dangling).
void MakeFilled(const std::string& path, const std::string& backing = "") {
  Qcow2CreateOptions o;
  o.size = backing.empty() ? 4 << 20 : 0;
  o.backing_file = backing;
  ASSERT_TRUE(CreateQcow2(path, o).has_value());
  auto d = OpenQcow2Disk(path, false);
  ASSERT_TRUE(d.has_value()) << d.error().ToString();
  for (uint64_t cluster : {0, 10, 40}) {
    auto data = Pattern(65536, cluster + 1);
    ASSERT_TRUE((*d)->Write(data.data(), data.size(), cluster * 65536).has_value());
  }
}

TEST(ImageCheckTest, SoundChainPasses) {
  TempDir dir;
  MakeFilled(dir.File("base.qcow2"));
  MakeFilled(dir.File("top.qcow2"), "base.qcow2");
  auto report = CheckDiskImage(dir.File("top.qcow2"), config::DiskFormat::kQcow2, Writable());
  ASSERT_TRUE(report.has_value()) << report.error().ToString();
  EXPECT_EQ(report->files,
            (std::vector<std::string>{dir.File("top.qcow2"), dir.File("base.qcow2")}));
  EXPECT_EQ(report->virtual_size, 4u << 20);

  ferry_test::WriteFile(dir.File("raw.img"), std::vector<uint8_t>(8192, 1));
  EXPECT_TRUE(CheckDiskImage(dir.File("raw.img"), config::DiskFormat::kRaw).has_value());
}

TEST(ImageCheckTest, TruncatedImageWhoseTablesPointPastTheEndIsRefused) {
  TempDir dir;
  const std::string path = dir.File("disk.qcow2");
  MakeFilled(path);
  // The metadata (header, refcounts, L1, L2) stays; the data clusters go.
  auto bytes = ferry_test::ReadBytes(path);
  auto h = qcow2::ParseHeader(bytes, bytes.size(), path);
  ASSERT_TRUE(h.has_value());
  const uint64_t l2 = qcow2::GetBe64(&bytes[h->l1_table_offset]) & qcow2::kOffsetMask;
  const uint64_t first_data = qcow2::GetBe64(&bytes[l2]) & qcow2::kOffsetMask;
  const uint64_t keep = std::max(first_data, l2) + 65536;  // the L2 table and cluster 0's data
  ASSERT_GE(qcow2::GetBe64(&bytes[l2 + 10 * 8]) & qcow2::kOffsetMask, keep);
  ASSERT_EQ(::truncate(path.c_str(), off_t(keep)), 0);

  ASSERT_TRUE(OpenQcow2Disk(path, true).has_value())
      << "opening alone does not see it (tables are lazy)";
  auto report = CheckDiskImage(path, config::DiskFormat::kQcow2);
  ASSERT_FALSE(report.has_value());
  EXPECT_EQ(report.error().code(), Code::kDataLoss);
  EXPECT_NE(report.error().message().find(path + ": L2 entry 10 of table at "), std::string::npos)
      << report.error().message();
  EXPECT_NE(report.error().message().find("points past end of file"), std::string::npos)
      << report.error().message();
}

TEST(ImageCheckTest, DamageInABackingLayerIsFoundAndNamed) {
  TempDir dir;
  const std::string base = dir.File("base.qcow2");
  MakeFilled(base);
  MakeFilled(dir.File("top.qcow2"), "base.qcow2");
  auto bytes = ferry_test::ReadBytes(base);
  auto h = qcow2::ParseHeader(bytes, bytes.size(), base);
  ASSERT_TRUE(h.has_value());
  const uint64_t l2 = qcow2::GetBe64(&bytes[h->l1_table_offset]) & qcow2::kOffsetMask;
  qcow2::PutBe64(&bytes[l2 + 40 * 8], qcow2::GetBe64(&bytes[l2 + 40 * 8]) | 2);  // a reserved bit
  ferry_test::WriteFile(base, bytes);

  auto report = CheckDiskImage(dir.File("top.qcow2"), config::DiskFormat::kQcow2);
  ASSERT_FALSE(report.has_value());
  EXPECT_EQ(report.error().code(), Code::kDataLoss);
  const std::string& m = report.error().message();
  EXPECT_EQ(m.rfind("backing file of " + dir.File("top.qcow2") + ": " + base + ": L2 entry 40", 0),
            0u)
      << m;
  EXPECT_NE(m.find("has reserved bits set"), std::string::npos) << m;
}

TEST(ImageCheckTest, LoopAndMissingBackingAreRefused) {
  TempDir dir;
  const std::string a = dir.File("a.qcow2");
  MakeFilled(a);
  ASSERT_TRUE(SetQcow2Backing(a, "a.qcow2", config::DiskFormat::kQcow2).has_value());
  auto loop = CheckDiskImage(a, config::DiskFormat::kQcow2);
  ASSERT_FALSE(loop.has_value());
  EXPECT_NE(loop.error().message().find("the backing chain loops"), std::string::npos)
      << loop.error().message();

  ASSERT_TRUE(SetQcow2Backing(a, "gone.qcow2", config::DiskFormat::kQcow2).has_value());
  auto missing = CheckDiskImage(a, config::DiskFormat::kQcow2);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), Code::kNotFound);
  EXPECT_NE(missing.error().message().find(dir.File("gone.qcow2")), std::string::npos)
      << missing.error().message();
}

TEST(ImageCheckTest, CorruptMarkedImageIsRefusedOnlyAsAWritableDisk) {
  TempDir dir;
  const std::string path = dir.File("disk.qcow2");
  MakeFilled(path);
  auto bytes = ferry_test::ReadBytes(path);
  qcow2::PutBe64(&bytes[72], qcow2::GetBe64(&bytes[72]) | qcow2::kIncompatCorrupt);
  ferry_test::WriteFile(path, bytes);
  EXPECT_TRUE(CheckDiskImage(path, config::DiskFormat::kQcow2).has_value())
      << "read-only use is allowed";
  auto writable = CheckDiskImage(path, config::DiskFormat::kQcow2, Writable());
  ASSERT_FALSE(writable.has_value());
  EXPECT_EQ(writable.error().code(), Code::kDataLoss);
  EXPECT_NE(writable.error().message().find(
                path + " cannot be used as a writable disk: the image is marked corrupt"),
            std::string::npos)
      << writable.error().message();
}

TEST(ImageCheckTest, CheckingWritesNothing) {
  TempDir dir;
  const std::string path = dir.File("disk.qcow2");
  MakeFilled(path);
  auto before = ferry_test::ReadBytes(path);
  ASSERT_TRUE(CheckDiskImage(path, config::DiskFormat::kQcow2, Writable()).has_value());
  EXPECT_EQ(ferry_test::ReadBytes(path), before);
}

}  // namespace
}  // namespace storage
