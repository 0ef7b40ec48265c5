#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>

#include "storage/disk.h"
#include "test_util.h"

namespace storage {
namespace {

using base::Code;
using testing::Pattern;
using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

class RawDiskTest : public ::testing::TestWithParam<IoEngine> {};

INSTANTIATE_TEST_SUITE_P(Engines, RawDiskTest,
                         ::testing::Values(IoEngine::kIoUring, IoEngine::kSync),
                         testing::EngineName);

TEST_P(RawDiskTest, SizeIsFileSizeRoundedDownToSectors) {
  TempDir dir;
  WriteFile(dir.File("d"), Pattern(8192 + 300, 1));
  auto disk = OpenRawDisk(dir.File("d"), false, GetParam());
  ASSERT_TRUE(disk.has_value()) << disk.error().ToString();
  EXPECT_EQ((*disk)->size(), 8192u);
  EXPECT_FALSE((*disk)->read_only());
  // The partial sector past size() is not part of the disk.
  uint8_t b[512];
  auto r = (*disk)->Read(b, 512, 8192);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kOutOfRange);
}

TEST_P(RawDiskTest, ReadWriteFlush) {
  TempDir dir;
  WriteFile(dir.File("d"), std::vector<uint8_t>(1 << 20, 0));
  auto disk = OpenRawDisk(dir.File("d"), false, GetParam());
  ASSERT_TRUE(disk.has_value()) << disk.error().ToString();
  auto data = Pattern(3 * 512, 2);
  ASSERT_TRUE((*disk)->Write(data.data(), data.size(), 4096).has_value());
  ASSERT_TRUE((*disk)->Flush().has_value());
  std::vector<uint8_t> back(data.size());
  ASSERT_TRUE((*disk)->Read(back.data(), back.size(), 4096).has_value());
  EXPECT_EQ(back, data);
  auto file = ReadFile(dir.File("d"));
  EXPECT_TRUE(std::equal(data.begin(), data.end(), file.begin() + 4096));
  // The last byte of the disk is in range; zero-length I/O at the end too.
  ASSERT_TRUE((*disk)->Write(data.data(), 1, (1 << 20) - 1).has_value());
  ASSERT_TRUE((*disk)->Read(back.data(), 0, 1 << 20).has_value());
}

TEST_P(RawDiskTest, OutOfRange) {
  TempDir dir;
  WriteFile(dir.File("d"), std::vector<uint8_t>(4096, 0));
  auto disk = OpenRawDisk(dir.File("d"), false, GetParam());
  ASSERT_TRUE(disk.has_value());
  std::vector<uint8_t> buf(8192);
  struct Case {
    size_t len;
    uint64_t offset;
  };
  for (auto [len, offset] : {Case{1, 4096}, Case{1024, 3584}, Case{8192, 0}, Case{1, UINT64_MAX},
                             Case{SIZE_MAX, 1}, Case{0, 4097}}) {
    auto r = (*disk)->Read(buf.data(), len, offset);
    ASSERT_FALSE(r.has_value()) << len << " at " << offset;
    EXPECT_EQ(r.error().code(), Code::kOutOfRange);
    EXPECT_EQ(r.error().message(), "read disk " + dir.File("d") + " at offset " +
                                       std::to_string(offset) + " (" + std::to_string(len) +
                                       " bytes): beyond the end of the disk (4096 bytes)");
    auto w = (*disk)->Write(buf.data(), len, offset);
    ASSERT_FALSE(w.has_value());
    EXPECT_EQ(w.error().code(), Code::kOutOfRange);
  }
  EXPECT_EQ(ReadFile(dir.File("d")).size(), 4096u);  // nothing was extended
}

TEST_P(RawDiskTest, PastEndOfFileButInsideDiskReadsZeros) {
  TempDir dir;
  WriteFile(dir.File("d"), Pattern(8192, 3));
  auto disk = OpenRawDisk(dir.File("d"), false, GetParam());
  ASSERT_TRUE(disk.has_value());
  // Someone shrinks the file under the open disk.
  ASSERT_EQ(truncate(dir.File("d").c_str(), 1000), 0);
  std::vector<uint8_t> buf(8192, 0xff);
  ASSERT_TRUE((*disk)->Read(buf.data(), buf.size(), 0).has_value());
  auto expected = Pattern(1000, 3);
  expected.resize(8192, 0);
  EXPECT_EQ(buf, expected);
}

TEST_P(RawDiskTest, ReadOnlyRefusesWrites) {
  TempDir dir;
  WriteFile(dir.File("d"), Pattern(4096, 4));
  auto disk = OpenRawDisk(dir.File("d"), true, GetParam());
  ASSERT_TRUE(disk.has_value()) << disk.error().ToString();
  EXPECT_TRUE((*disk)->read_only());
  auto data = Pattern(512, 5);
  auto w = (*disk)->Write(data.data(), data.size(), 0);
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().code(), Code::kPermissionDenied);
  EXPECT_EQ(w.error().message(), "write disk " + dir.File("d") + ": the disk is read-only");
  EXPECT_TRUE((*disk)->Flush().has_value());
  std::vector<uint8_t> back(4096);
  ASSERT_TRUE((*disk)->Read(back.data(), back.size(), 0).has_value());
  EXPECT_EQ(back, Pattern(4096, 4));
  EXPECT_EQ(ReadFile(dir.File("d")), Pattern(4096, 4));
}

TEST_P(RawDiskTest, MissingFileIsNotFound) {
  TempDir dir;
  auto disk = OpenRawDisk(dir.File("absent.img"), false, GetParam());
  ASSERT_FALSE(disk.has_value());
  EXPECT_EQ(disk.error().code(), Code::kNotFound);
  EXPECT_NE(disk.error().message().find(dir.File("absent.img")), std::string::npos)
      << disk.error().message();
}

TEST_P(RawDiskTest, FileSmallerThanASectorIsRejected) {
  TempDir dir;
  for (size_t size : {0, 511}) {
    WriteFile(dir.File("d"), std::vector<uint8_t>(size, 0));
    auto disk = OpenRawDisk(dir.File("d"), false, GetParam());
    ASSERT_FALSE(disk.has_value());
    EXPECT_EQ(disk.error().code(), Code::kInvalidArgument);
    EXPECT_EQ(disk.error().message(), "raw disk " + dir.File("d") +
                                          " is smaller than one 512-byte sector (" +
                                          std::to_string(size) + " bytes)");
  }
}

TEST_P(RawDiskTest, MapExtentReportsDataAndHoles) {
  TempDir dir;
  const std::string path = dir.File("d");
  WriteFile(path, Pattern(65536, 6));
  ASSERT_EQ(truncate(path.c_str(), 4 << 20), 0);
  {
    auto more = Pattern(65536, 7);
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1 << 20);
    f.write(reinterpret_cast<const char*>(more.data()), static_cast<std::streamsize>(more.size()));
  }
  auto disk = OpenRawDisk(path, true, GetParam());
  ASSERT_TRUE(disk.has_value()) << disk.error().ToString();
  auto e = (*disk)->MapExtent(0, UINT64_MAX);
  ASSERT_TRUE(e.has_value()) << e.error().ToString();
  if (e->length == 4u << 20) GTEST_SKIP() << "the file system reports no holes";
  EXPECT_EQ(e->kind, ExtentKind::kData);
  EXPECT_EQ(e->length, 65536u);
  e = (*disk)->MapExtent(65536, UINT64_MAX);
  EXPECT_EQ(e->kind, ExtentKind::kZero);
  EXPECT_EQ(e->offset + e->length, 1u << 20);
  e = (*disk)->MapExtent(1 << 20, 4096);  // clipped to max_len
  EXPECT_EQ(e->kind, ExtentKind::kData);
  EXPECT_EQ(e->length, 4096u);
  e = (*disk)->MapExtent((1 << 20) + 65536, UINT64_MAX);  // hole to the end
  EXPECT_EQ(e->kind, ExtentKind::kZero);
  EXPECT_EQ(e->offset + e->length, 4u << 20);
  e = (*disk)->MapExtent(4 << 20, 10);  // at the end: empty
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->length, 0u);
  auto bad = (*disk)->MapExtent((4 << 20) + 512, 10);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), Code::kOutOfRange);
}

}  // namespace
}  // namespace storage
