// Backing chains an admin can get wrong: loops (found by file identity, at
// once, naming the files), names read from an image that hold control
// characters (always printed escaped), and the compression-type feature bit
// with the wrong type (refused like qemu refuses it).
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <string>

#include "qcow2_format.h"
#include "qcow2_test_util.h"
#include "storage/disk.h"
#include "storage/qcow2.h"

namespace storage {
namespace {

using base::Code;
using testing::TempDir;

void MakeImage(const std::string& path, const std::string& backing = "",
               config::DiskFormat backing_format = config::DiskFormat::kQcow2) {
  Qcow2CreateOptions o;
  o.size = 1 << 20;
  o.backing_file = backing;
  o.backing_format = backing_format;
  ASSERT_TRUE(CreateQcow2(path, o).has_value()) << path;
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

bool HasRawControl(const std::string& text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
  }
  return false;
}

TEST(Qcow2ChainTest, TwoImagesBackingEachOtherAreALoopNamedAtOnce) {
  TempDir dir;
  const std::string a = dir.File("a.qcow2"), b = dir.File("b.qcow2");
  MakeImage(b);
  MakeImage(a, "b.qcow2");
  ASSERT_TRUE(SetQcow2Backing(b, "a.qcow2", config::DiskFormat::kQcow2).has_value());

  for (bool read_only : {true, false}) {
    auto disk = OpenQcow2Disk(a, read_only);
    ASSERT_FALSE(disk.has_value());
    const std::string& m = disk.error().message();
    EXPECT_EQ(disk.error().code(), Code::kDataLoss);
    EXPECT_NE(m.find("the backing chain loops"), std::string::npos) << m;
    EXPECT_NE(m.find(a + " -> " + b + " -> " + a), std::string::npos) << m;
    // Found when b names a again, not 32 levels down.
    EXPECT_EQ(Count(m, "backing file of "), 1u) << m;
  }
}

TEST(Qcow2ChainTest, AnImageBackingItselfIsALoop) {
  TempDir dir;
  const std::string a = dir.File("a.qcow2");
  MakeImage(a);
  ASSERT_TRUE(SetQcow2Backing(a, "a.qcow2", config::DiskFormat::kQcow2).has_value());
  auto disk = OpenQcow2Disk(a, true);
  ASSERT_FALSE(disk.has_value());
  EXPECT_EQ(disk.error().code(), Code::kDataLoss);
  EXPECT_NE(disk.error().message().find(a + ": the backing chain loops: its backing file " + a +
                                        " is the image itself"),
            std::string::npos)
      << disk.error().message();

  // Read as raw, the image would be its own backing file too: refused.
  ASSERT_TRUE(SetQcow2Backing(a, "a.qcow2", config::DiskFormat::kRaw).has_value());
  auto raw = OpenQcow2Disk(a, true);
  ASSERT_FALSE(raw.has_value());
  EXPECT_NE(raw.error().message().find("is the image itself"), std::string::npos)
      << raw.error().message();
}

TEST(Qcow2ChainTest, LoopsAreFoundByIdentityNotByName) {
  TempDir dir;
  const std::string a = dir.File("a.qcow2"), b = dir.File("b.qcow2");
  MakeImage(b);
  MakeImage(a, "b.qcow2");
  // b names a through a symlink and with a different spelling: same file.
  ASSERT_EQ(::symlink("a.qcow2", dir.File("link-to-a.qcow2").c_str()), 0);
  ASSERT_TRUE(SetQcow2Backing(b, "./link-to-a.qcow2", config::DiskFormat::kQcow2).has_value());
  auto disk = OpenQcow2Disk(a, true);
  ASSERT_FALSE(disk.has_value());
  EXPECT_NE(disk.error().message().find("is the same file as " + a), std::string::npos)
      << disk.error().message();

  // A chain that visits no file twice opens, however its names are spelled.
  ASSERT_TRUE(SetQcow2Backing(b, "", config::DiskFormat::kQcow2).has_value());
  ASSERT_TRUE(SetQcow2Backing(a, "./b.qcow2", config::DiskFormat::kQcow2).has_value());
  EXPECT_TRUE(OpenQcow2Disk(a, true).has_value());
}

TEST(Qcow2ChainTest, LongLoopFailsFastAndSmall) {
  // A loop of 5 images: refused after opening 5 files, not 32.
  TempDir dir;
  for (int i = 0; i < 5; ++i) MakeImage(dir.File("l" + std::to_string(i) + ".qcow2"));
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(SetQcow2Backing(dir.File("l" + std::to_string(i) + ".qcow2"),
                                "l" + std::to_string((i + 1) % 5) + ".qcow2",
                                config::DiskFormat::kQcow2)
                    .has_value());
  auto disk = OpenQcow2Disk(dir.File("l0.qcow2"), true);
  ASSERT_FALSE(disk.has_value());
  const std::string& m = disk.error().message();
  EXPECT_EQ(Count(m, "backing file of "), 4u) << m;
  EXPECT_NE(m.find("l4.qcow2: the backing chain loops"), std::string::npos) << m;
}

TEST(Qcow2ChainTest, BackingNamesWithControlCharactersArePrintedEscaped) {
  TempDir dir;
  const std::string a = dir.File("a.qcow2");
  MakeImage(a);
  // A missing backing file whose name would clear the screen and fake a log line.
  const std::string evil = "x\x1b[2J\nERROR all fine\x7f.qcow2";
  ASSERT_TRUE(SetQcow2Backing(a, evil, config::DiskFormat::kQcow2).has_value());
  auto disk = OpenQcow2Disk(a, true);
  ASSERT_FALSE(disk.has_value());
  const std::string& m = disk.error().message();
  EXPECT_FALSE(HasRawControl(m)) << m;
  EXPECT_NE(m.find("x\\x1b[2J\\x0aERROR all fine\\x7f.qcow2"), std::string::npos) << m;

  // The backing format name comes from the image too.
  auto bytes = ferry_test::ReadBytes(a);
  auto h = qcow2::ParseHeader(bytes, bytes.size(), a);
  ASSERT_TRUE(h.has_value());
  h->backing_file = "b.qcow2";
  h->backing_format = "qc\x1b]0;ow2";
  auto encoded = qcow2::EncodeHeader(*h);
  ASSERT_TRUE(encoded.has_value());
  std::copy(encoded->begin(), encoded->end(), bytes.begin());
  ferry_test::WriteFile(a, bytes);
  auto fmt = OpenQcow2Disk(a, true);
  ASSERT_FALSE(fmt.has_value());
  EXPECT_FALSE(HasRawControl(fmt.error().message())) << fmt.error().message();
  EXPECT_NE(fmt.error().message().find("backing file format 'qc\\x1b]0;ow2'"), std::string::npos)
      << fmt.error().message();
}

TEST(Qcow2ChainTest, TheImagesOwnPathIsEscapedInItsErrors) {
  TempDir dir;
  const std::string odd = dir.File("odd\tname\n.qcow2");
  ferry_test::WriteFile(odd, std::vector<uint8_t>(100, 0));  // too short to be an image
  auto disk = OpenQcow2Disk(odd, true);
  ASSERT_FALSE(disk.has_value());
  EXPECT_FALSE(HasRawControl(disk.error().message())) << disk.error().message();
  EXPECT_NE(disk.error().message().find("odd\\x09name\\x0a.qcow2"), std::string::npos)
      << disk.error().message();
}

// qemu-img makes the image; patching the type to zlib with the bit still set
// gives an image qemu itself refuses, and so must ferry.
TEST(Qcow2ChainTest, CompressionBitWithZlibIsRefusedLikeQemu) {
  SKIP_WITHOUT_QEMU_IMG();
  TempDir dir;
  const std::string path = dir.File("zstd.qcow2");
  auto made =
      testing::Run("qemu-img create -q -f qcow2 -o compression_type=zstd '" + path + "' 1M");
  ASSERT_EQ(made.exit_code, 0) << made.output;
  auto bytes = ferry_test::ReadBytes(path);
  ASSERT_GT(bytes.size(), 105u);
  ASSERT_EQ(bytes[104], qcow2::kCompressionZstd);
  ASSERT_NE(qcow2::GetBe64(&bytes[72]) & qcow2::kIncompatCompression, 0u);
  ASSERT_TRUE(OpenQcow2Disk(path, true).has_value()) << "the image as qemu made it opens";

  bytes[104] = qcow2::kCompressionZlib;
  ferry_test::WriteFile(path, bytes);
  auto qemu = testing::Run("qemu-img info '" + path + "'");
  EXPECT_NE(qemu.exit_code, 0) << "qemu accepts it?\n" << qemu.output;
  auto disk = OpenQcow2Disk(path, true);
  ASSERT_FALSE(disk.has_value());
  EXPECT_EQ(disk.error().code(), Code::kDataLoss);
  EXPECT_NE(
      disk.error().message().find(path + ": the compression-type incompatible feature bit is set"),
      std::string::npos)
      << disk.error().message();
}

}  // namespace
}  // namespace storage
