// The qcow2 header codec: golden bytes, round trips, extension handling.
#include <gtest/gtest.h>

#include "qcow2_format.h"

namespace storage::qcow2 {
namespace {

Header Sample() {
  Header h;
  h.cluster_bits = 16;
  h.size = 1 << 30;
  h.l1_size = 2;
  h.l1_table_offset = 0x30000;
  h.refcount_table_offset = 0x10000;
  h.refcount_table_clusters = 1;
  h.backing_file = "../base image.raw";
  h.backing_format = "raw";
  h.feature_names = {{0, 0, "dirty bit"}, {0, 9, "shiny new thing"}};
  h.other_extensions = {{0x12345678, "abc"}};
  return h;
}

TEST(Qcow2Format, GoldenFixedFields) {
  auto bytes = EncodeHeader(Sample());
  ASSERT_TRUE(bytes.has_value());
  ASSERT_EQ(bytes->size(), 65536u);
  const std::vector<uint8_t> golden = {
      'Q', 'F', 'I', 0xfb, 0, 0, 0, 3,  // magic, version
  };
  EXPECT_TRUE(std::equal(golden.begin(), golden.end(), bytes->begin()));
  EXPECT_EQ(GetBe32(&(*bytes)[20]), 16u);         // cluster_bits
  EXPECT_EQ(GetBe64(&(*bytes)[24]), 1ull << 30);  // size, big-endian
  EXPECT_EQ((*bytes)[24 + 4], 0x40);
  EXPECT_EQ(GetBe32(&(*bytes)[96]), 4u);     // refcount_order
  EXPECT_EQ(GetBe32(&(*bytes)[100]), 112u);  // header_length
  EXPECT_EQ(GetBe32(&(*bytes)[112]), kExtBackingFormat);
  EXPECT_EQ(GetBe32(&(*bytes)[116]), 3u);
}

TEST(Qcow2Format, RoundTrip) {
  Header in = Sample();
  auto bytes = EncodeHeader(in);
  ASSERT_TRUE(bytes.has_value());
  auto out = ParseHeader(*bytes, 1 << 20, "x.qcow2");
  ASSERT_TRUE(out.has_value()) << out.error().ToString();
  EXPECT_EQ(out->size, in.size);
  EXPECT_EQ(out->backing_file, in.backing_file);
  EXPECT_EQ(out->backing_format, "raw");
  ASSERT_EQ(out->feature_names.size(), 2u);
  EXPECT_EQ(out->feature_names[1].name, "shiny new thing");
  ASSERT_EQ(out->other_extensions.size(), 1u);
  EXPECT_EQ(out->other_extensions[0].data, "abc");
  EXPECT_EQ(IncompatibleFeatureName(*out, 9), "shiny new thing");
  EXPECT_EQ(IncompatibleFeatureName(*out, 4), "extended L2 entries");
  EXPECT_EQ(IncompatibleFeatureName(*out, 40), "unknown feature bit 40");
}

TEST(Qcow2Format, TablesMustFitTheFile) {
  auto bytes = EncodeHeader(Sample());
  ASSERT_TRUE(bytes.has_value());
  auto out = ParseHeader(*bytes, 0x30000, "x.qcow2");  // L1 would start at EOF
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().code(), base::Code::kDataLoss);
  EXPECT_NE(out.error().message().find("x.qcow2: L1 table at 0x30000"), std::string::npos)
      << out.error().message();
}

TEST(Qcow2Format, BackingNameTooLong) {
  Header h = Sample();
  h.backing_file = std::string(2000, 'a');
  auto bytes = EncodeHeader(h);
  ASSERT_FALSE(bytes.has_value());
  EXPECT_EQ(bytes.error().code(), base::Code::kInvalidArgument);
}

// qemu's rule (block/qcow2.c, validate_compression_type): the compression
// type incompatible bit is set exactly when the type is not zlib.
TEST(Qcow2Format, CompressionTypeBitMustMatchTheType) {
  Header h = Sample();
  h.incompatible_features = kIncompatCompression;
  h.compression_type = kCompressionZstd;
  auto zstd = EncodeHeader(h);
  ASSERT_TRUE(zstd.has_value());
  EXPECT_TRUE(ParseHeader(*zstd, 1 << 20, "x.qcow2").has_value()) << "zstd with the bit is valid";

  h.compression_type = kCompressionZlib;
  auto zlib_with_bit = EncodeHeader(h);
  ASSERT_TRUE(zlib_with_bit.has_value());
  auto out = ParseHeader(*zlib_with_bit, 1 << 20, "x.qcow2");
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().code(), base::Code::kDataLoss);
  EXPECT_NE(out.error().message().find(
                "x.qcow2: the compression-type incompatible feature bit is set, but the "
                "compression type is 0 (zlib)"),
            std::string::npos)
      << out.error().message();

  h.incompatible_features = 0;
  h.compression_type = kCompressionZstd;
  auto zstd_without_bit = EncodeHeader(h);
  ASSERT_TRUE(zstd_without_bit.has_value());
  EXPECT_FALSE(ParseHeader(*zstd_without_bit, 1 << 20, "x.qcow2").has_value());
}

TEST(Qcow2Format, L1EntriesFor) {
  EXPECT_EQ(L1EntriesFor(0, 16), 0u);
  EXPECT_EQ(L1EntriesFor(1, 16), 1u);
  EXPECT_EQ(L1EntriesFor(512ull << 20, 16), 1u);
  EXPECT_EQ(L1EntriesFor((512ull << 20) + 1, 16), 2u);
  EXPECT_EQ(L1EntriesFor(2ull << 20, 12), 1u);
  EXPECT_EQ(L1EntriesFor(1ull << 40, 21), 2u);  // 2 MiB clusters: 512 GiB per L2
}

}  // namespace
}  // namespace storage::qcow2
