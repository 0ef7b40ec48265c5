#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <utility>
#include <vector>

#include "storage/disk.h"
#include "test_util.h"

namespace storage {
namespace {

using base::Code;
using ferry_test::ReadBytes;
using ferry_test::WriteFile;
using testing::Pattern;
using testing::TempDir;

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
  auto file = ReadBytes(dir.File("d"));
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
  EXPECT_EQ(ReadBytes(dir.File("d")).size(), 4096u);  // nothing was extended
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
  EXPECT_EQ(ReadBytes(dir.File("d")), Pattern(4096, 4));
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

// Discard punches a hole (the space is given back), WriteZeroes zeroes in
// place; both read as zeros, keep the size, and have Write's checks. Where
// the file system cannot (tmpfs has no ZERO_RANGE) the fallback writes zeros.
TEST_P(RawDiskTest, DiscardAndWriteZeroes) {
  TempDir dir;
  const size_t size = 4 << 20;
  auto data = Pattern(size, 21);
  WriteFile(dir.File("d"), data);
  auto disk = OpenRawDisk(dir.File("d"), false, GetParam());
  ASSERT_TRUE(disk.has_value()) << disk.error().ToString();
  struct stat before;
  ASSERT_EQ(stat(dir.File("d").c_str(), &before), 0);

  ASSERT_TRUE((*disk)->Discard(1 << 20, 2 << 20).has_value());
  ASSERT_TRUE((*disk)->WriteZeroes(100, 5000).has_value());  // not block aligned
  ASSERT_TRUE((*disk)->Discard(size - 512, 512).has_value());
  ASSERT_TRUE((*disk)->Flush().has_value());
  for (auto [off, len] :
       {std::pair<size_t, size_t>{1 << 20, 2 << 20}, {100, 5000}, {size - 512, 512}})
    std::fill(data.begin() + off, data.begin() + off + len, 0);
  std::vector<uint8_t> back(size);
  ASSERT_TRUE((*disk)->Read(back.data(), size, 0).has_value());
  EXPECT_TRUE(back == data);
  EXPECT_TRUE(ReadBytes(dir.File("d")) == data);
  struct stat after;
  ASSERT_EQ(stat(dir.File("d").c_str(), &after), 0);
  EXPECT_EQ(after.st_size, before.st_size);
  // 2 MiB punched out (ext4, xfs, tmpfs all punch holes).
  EXPECT_LE(after.st_blocks * 512, before.st_blocks * 512 - (2 << 20) + 65536);
  auto e = (*disk)->MapExtent(1 << 20, 2 << 20);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->kind, ExtentKind::kZero);

  auto past = (*disk)->Discard(size - 512, 1024);
  ASSERT_FALSE(past.has_value());
  EXPECT_EQ(past.error().code(), Code::kOutOfRange);
  EXPECT_EQ((*disk)->WriteZeroes(size, 1).error().code(), Code::kOutOfRange);
  EXPECT_TRUE((*disk)->Discard(size, 0).has_value());

  auto ro = OpenRawDisk(dir.File("d"), true, GetParam());
  ASSERT_TRUE(ro.has_value());
  EXPECT_EQ((*ro)->Discard(0, 512).error().code(), Code::kPermissionDenied);
  EXPECT_EQ((*ro)->WriteZeroes(0, 512).error().code(), Code::kPermissionDenied);
}

TEST_P(RawDiskTest, BlockFilePunchHoleAndZeroRange) {
  TempDir dir;
  WriteFile(dir.File("f"), Pattern(1 << 20, 22));
  OpenOptions o;
  o.engine = GetParam();
  auto f = OpenBlockFile(dir.File("f"), o);
  ASSERT_TRUE(f.has_value());
  ASSERT_TRUE((*f)->PunchHole(4096, 8192).has_value());
  base::Status z = (*f)->ZeroRange(65536, 4096);
  if (!z) {
    EXPECT_EQ(z.error().code(), Code::kUnimplemented) << z.error().ToString();
  }
  EXPECT_EQ(*(*f)->Size(), 1u << 20);
  std::vector<uint8_t> back(8192, 0xee);
  EXPECT_EQ(*(*f)->ReadAt(back.data(), back.size(), 4096), back.size());
  EXPECT_EQ(back, std::vector<uint8_t>(8192, 0));
  EXPECT_TRUE((*f)->PunchHole(0, 0).has_value());
  EXPECT_EQ((*f)->PunchHole(~0ull - 10, 100).error().code(), Code::kInvalidArgument);
  o.writable = false;
  auto ro = OpenBlockFile(dir.File("f"), o);
  ASSERT_TRUE(ro.has_value());
  EXPECT_EQ((*ro)->PunchHole(0, 4096).error().code(), Code::kPermissionDenied);
  EXPECT_EQ((*ro)->ZeroRange(0, 4096).error().code(), Code::kPermissionDenied);
}

}  // namespace
}  // namespace storage
