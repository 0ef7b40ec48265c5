// Interoperability with qemu-img, the reference implementation, both ways:
// images ferry writes pass `qemu-img check` and equal the expected bytes per
// `qemu-img compare`; images qemu writes (compressed, zero clusters, backing
// chains, several cluster sizes) read back exactly through ferry. Skips when
// qemu-utils is not installed.
#include <gtest/gtest.h>

#include "qcow2_test_util.h"

namespace storage {
namespace {

using config::DiskFormat;
using ferry_test::ReadBytes;
using ferry_test::WriteFile;
using testing::ExpectQemuCheckClean;
using testing::ExpectQemuCompareEqual;
using testing::FirstDiff;
using testing::Pattern;
using testing::ReadAll;
using testing::TempDir;

void MustRun(const std::string& cmd) {
  auto r = testing::Run(cmd);
  ASSERT_EQ(r.exit_code, 0) << cmd << ":\n" << r.output;
}

// qemu's view of an image as raw bytes.
std::vector<uint8_t> QemuRaw(const TempDir& dir, const std::string& image) {
  std::string out = dir.File("expected-" + std::to_string(rand()) + ".raw");
  auto r = testing::Run("qemu-img convert -O raw '" + image + "' '" + out + "'");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return ReadBytes(out);
}

std::vector<uint8_t> FerryRaw(const std::string& image) {
  auto d = OpenQcow2Disk(image, true);
  EXPECT_TRUE(d.has_value()) << d.error().ToString();
  if (!d) return {};
  return ReadAll(**d);
}

class FerryWritesTest : public ::testing::TestWithParam<uint32_t> {
 protected:
  void SetUp() override { SKIP_WITHOUT_QEMU_IMG(); }
};

INSTANTIATE_TEST_SUITE_P(Clusters, FerryWritesTest, ::testing::Values(4096, 65536, 2 << 20),
                         [](const auto& p) { return std::to_string(p.param / 1024) + "K"; });

TEST_P(FerryWritesTest, RandomIoPassesCheckAndCompare) {
  TempDir dir;
  const uint64_t size = 16 << 20;
  Qcow2CreateOptions o;
  o.size = size;
  o.cluster_size = GetParam();
  std::string path = dir.File("a.qcow2");
  ASSERT_TRUE(CreateQcow2(path, o).has_value());
  ExpectQemuCheckClean(path);
  std::vector<uint8_t> model(size, 0);
  {
    auto d = OpenQcow2Disk(path, false);
    ASSERT_TRUE(d.has_value()) << d.error().ToString();
    testing::RandomIo(**d, model, 100 + GetParam(), GetParam() >= (2u << 20) ? 60 : 250,
                      GetParam());
  }
  WriteFile(dir.File("expected.raw"), model);
  ExpectQemuCheckClean(path);
  ExpectQemuCompareEqual(path, dir.File("expected.raw"));
}

TEST_P(FerryWritesTest, BackingChainPassesCheckAndCompare) {
  TempDir dir;
  const uint64_t size = 8 << 20;
  auto model = Pattern(size, 9);
  WriteFile(dir.File("base.raw"), model);
  Qcow2CreateOptions o;
  o.cluster_size = GetParam();
  o.backing_file = "base.raw";
  o.backing_format = DiskFormat::kRaw;
  ASSERT_TRUE(CreateQcow2(dir.File("l1.qcow2"), o).has_value());
  o.backing_file = "l1.qcow2";
  o.backing_format = DiskFormat::kQcow2;
  ASSERT_TRUE(CreateQcow2(dir.File("l2.qcow2"), o).has_value());
  o.backing_file = "l2.qcow2";
  ASSERT_TRUE(CreateQcow2(dir.File("l3.qcow2"), o).has_value());
  uint64_t seed = 200;
  for (const char* layer : {"l1.qcow2", "l2.qcow2", "l3.qcow2"}) {
    auto d = OpenQcow2Disk(dir.File(layer), false);
    ASSERT_TRUE(d.has_value()) << d.error().ToString();
    testing::RandomIo(**d, model, seed++, GetParam() >= (2u << 20) ? 20 : 80, GetParam());
  }
  WriteFile(dir.File("expected.raw"), model);
  for (const char* layer : {"l1.qcow2", "l2.qcow2", "l3.qcow2"})
    ExpectQemuCheckClean(dir.File(layer));
  ExpectQemuCompareEqual(dir.File("l3.qcow2"), dir.File("expected.raw"));
  auto info = testing::Run("qemu-img info --backing-chain '" + dir.File("l3.qcow2") + "'");
  EXPECT_EQ(info.exit_code, 0) << info.output;
  EXPECT_NE(info.output.find("backing file format: raw"), std::string::npos) << info.output;
}

class QemuWritesTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { SKIP_WITHOUT_QEMU_IMG(); }
};

INSTANTIATE_TEST_SUITE_P(Clusters, QemuWritesTest, ::testing::Values("4k", "64k", "2M"));

TEST_P(QemuWritesTest, DataAndZeroClustersReadBack) {
  TempDir dir;
  std::string img = dir.File("q.qcow2");
  MustRun("qemu-img create -q -f qcow2 -o cluster_size=" + GetParam() + " '" + img + "' 12M");
  MustRun(
      "qemu-io -f qcow2 -c 'write -P 0xa5 0 3M' -c 'write -P 0x11 5000k 300k' "
      "-c 'write -z 1M 1M' -c 'write -P 0x3c 7M 4097k' -c 'discard 8M 1M' '" +
      img + "'");
  auto expected = QemuRaw(dir, img);
  ASSERT_EQ(expected.size(), 12u << 20);
  EXPECT_EQ(FirstDiff(FerryRaw(img), expected), -1);
  // The zero write over whole clusters of data made zero clusters.
  auto d = OpenQcow2Disk(img, true);
  ASSERT_TRUE(d.has_value());
  auto e = (*d)->MapExtent(1 << 20, 4096);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->kind, GetParam() == "2M" ? ExtentKind::kData : ExtentKind::kZero);
}

TEST_P(QemuWritesTest, FerryWritesIntoQemuImage) {
  TempDir dir;
  std::string img = dir.File("q.qcow2");
  MustRun("qemu-img create -q -f qcow2 -o cluster_size=" + GetParam() + " '" + img + "' 8M");
  MustRun("qemu-io -f qcow2 -c 'write -P 0x77 0 5M' -c 'write -z 5M 1M' '" + img + "'");
  auto model = QemuRaw(dir, img);
  {
    auto d = OpenQcow2Disk(img, false);
    ASSERT_TRUE(d.has_value()) << d.error().ToString();
    uint64_t cs = (*d)->info().cluster_size;
    testing::RandomIo(**d, model, 300, cs >= (2u << 20) ? 30 : 150, cs);
  }
  WriteFile(dir.File("expected.raw"), model);
  ExpectQemuCheckClean(img);
  ExpectQemuCompareEqual(img, dir.File("expected.raw"));
}

TEST_P(QemuWritesTest, BackingChainThreeDeepReadsBack) {
  TempDir dir;
  std::string cs = GetParam();
  MustRun("qemu-img create -q -f qcow2 -o cluster_size=" + cs + " '" + dir.File("b.qcow2") +
          "' 10M");
  MustRun("qemu-io -f qcow2 -c 'write -P 0x01 0 10M' '" + dir.File("b.qcow2") + "'");
  MustRun("cd '" + dir.path() + "' && qemu-img create -q -f qcow2 -o cluster_size=" + cs +
          " -b b.qcow2 -F qcow2 m.qcow2");
  MustRun("qemu-io -f qcow2 -c 'write -P 0x02 1M 2M' -c 'write -z 4M 512k' '" +
          dir.File("m.qcow2") + "'");
  MustRun("cd '" + dir.path() + "' && qemu-img create -q -f qcow2 -o cluster_size=" + cs +
          " -b m.qcow2 -F qcow2 t.qcow2");
  MustRun(
      "qemu-io -f qcow2 -c 'write -P 0x03 1500k 100k' -c 'write -P 0x04 9M 1k' "
      "-c 'discard 6M 2M' '" +
      dir.File("t.qcow2") + "'");
  auto expected = QemuRaw(dir, dir.File("t.qcow2"));
  EXPECT_EQ(FirstDiff(FerryRaw(dir.File("t.qcow2")), expected), -1);
  // And ferry writes on top of qemu's chain keep qemu happy.
  {
    auto d = OpenQcow2Disk(dir.File("t.qcow2"), false);
    ASSERT_TRUE(d.has_value()) << d.error().ToString();
    auto data = Pattern(70000, 5);
    ASSERT_TRUE((*d)->Write(data.data(), data.size(), 4 << 20).has_value());
    std::copy(data.begin(), data.end(), expected.begin() + (4 << 20));
  }
  WriteFile(dir.File("expected.raw"), expected);
  ExpectQemuCheckClean(dir.File("t.qcow2"));
  ExpectQemuCompareEqual(dir.File("t.qcow2"), dir.File("expected.raw"));
}

// A raw source with compressible and incompressible clusters.
std::vector<uint8_t> MixedContent(uint64_t size) {
  std::vector<uint8_t> out(size, 0);
  auto noise = Pattern(size, 77);
  for (uint64_t off = 0; off < size; off += 8192) {
    switch ((off / 8192) % 4) {
      case 0: std::copy(noise.begin() + off, noise.begin() + off + 8192, out.begin() + off); break;
      case 1:
        for (uint64_t i = 0; i < 8192; ++i) out[off + i] = uint8_t("ferry qcow2 "[i % 12]);
        break;
      case 2: break;  // zeros
      case 3:
        for (uint64_t i = 0; i < 8192; ++i) out[off + i] = uint8_t(i / 64);
        break;
    }
  }
  return out;
}

class CompressedTest : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {
 protected:
  void SetUp() override { SKIP_WITHOUT_QEMU_IMG(); }
};

INSTANTIATE_TEST_SUITE_P(Types, CompressedTest,
                         ::testing::Combine(::testing::Values("zlib", "zstd"),
                                            ::testing::Values("4k", "64k", "2M")),
                         [](const auto& p) {
                           return std::get<0>(p.param) + "_" + std::get<1>(p.param);
                         });

TEST_P(CompressedTest, ReadsBackAndWritesOver) {
  TempDir dir;
  auto [type, cs] = GetParam();
  auto content = MixedContent(6 << 20);
  WriteFile(dir.File("src.raw"), content);
  std::string img = dir.File("c.qcow2");
  MustRun("qemu-img convert -c -O qcow2 -o compression_type=" + type + ",cluster_size=" + cs +
          " '" + dir.File("src.raw") + "' '" + img + "'");
  auto info = testing::Run("qemu-img info '" + img + "'");
  EXPECT_NE(info.output.find("compression type: " + type), std::string::npos) << info.output;
  EXPECT_EQ(FirstDiff(FerryRaw(img), content), -1);
  // Overwriting parts of compressed clusters copies them out and frees them.
  {
    auto d = OpenQcow2Disk(img, false);
    ASSERT_TRUE(d.has_value()) << d.error().ToString();
    uint64_t csize = (*d)->info().cluster_size;
    testing::RandomIo(**d, content, 400, csize >= (2u << 20) ? 20 : 100, csize);
  }
  WriteFile(dir.File("expected.raw"), content);
  ExpectQemuCheckClean(img);
  ExpectQemuCompareEqual(img, dir.File("expected.raw"));
  EXPECT_EQ(FirstDiff(FerryRaw(img), content), -1);
}

}  // namespace
}  // namespace storage
