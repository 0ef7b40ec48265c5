// The adaptive compressor's decisions, and Decompress's refusal of anything
// but one well-formed, size-declaring zstd frame within the limit.
#include "transport/compressor.h"

#include <zstd.h>

#include <gtest/gtest.h>

#include "transport_test_util.h"

namespace transport {
namespace {

constexpr size_t kBatch = 64 << 10;

std::vector<uint8_t> Concat(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  std::vector<uint8_t> v = a;
  v.insert(v.end(), b.begin(), b.end());
  return v;
}

void ExpectRoundTrip(const std::vector<uint8_t>& compressed, const std::vector<uint8_t>& original) {
  std::vector<uint8_t> out;
  base::Status st = Decompress(compressed, uint32_t(original.size()), out);
  ASSERT_TRUE(st.has_value()) << st.error().ToString();
  EXPECT_EQ(out, original);
}

TEST(CompressorTest, ZeroDataIsCompressed) {
  Compressor c(true);
  std::vector<uint8_t> zeros(kBatch), out;
  zeros[100] = 7;
  ASSERT_TRUE(c.Compress(zeros, {}, out));
  EXPECT_LT(out.size(), kBatch / 20);
  ExpectRoundTrip(out, zeros);
  // Even on a link far faster than zstd.
  c.NoteSent(uint64_t(1) << 40, 1);
  EXPECT_TRUE(c.Compress(zeros, {}, out));
  EXPECT_EQ(c.stats().compressed_batches, 2u);
}

TEST(CompressorTest, TwoSpansCompressAsOnePayload) {
  Compressor c(true);
  std::vector<uint8_t> a = testing::TextBytes(1, 300), b(kBatch), out;
  ASSERT_TRUE(c.Compress(a, b, out));
  ExpectRoundTrip(out, Concat(a, b));
}

TEST(CompressorTest, DisabledOrTinyIsPlain) {
  Compressor off(false);
  std::vector<uint8_t> zeros(kBatch), out;
  EXPECT_FALSE(off.Compress(zeros, {}, out));
  EXPECT_EQ(off.stats().probed_batches, 0u);
  Compressor on(true);
  std::vector<uint8_t> tiny(100);
  EXPECT_FALSE(on.Compress(tiny, {}, out));
  EXPECT_EQ(on.stats().probed_batches, 0u);
}

TEST(CompressorTest, RandomDataGoesPlainAndIsRarelyProbed) {
  Compressor c(true);
  std::vector<uint8_t> out;
  for (int i = 0; i < 200; ++i) {
    std::vector<uint8_t> data = testing::RandomBytes(uint64_t(i), kBatch);
    EXPECT_FALSE(c.Compress(data, {}, out)) << i;
  }
  Compressor::Stats s = c.stats();
  EXPECT_EQ(s.batches, 200u);
  EXPECT_EQ(s.compressed_batches, 0u);
  // Back-off 1, 2, 4 ... 64: probes at batches 0, 2, 5, 10, 19, 36, 69, 134, 199.
  EXPECT_LE(s.probed_batches, 10u);
  EXPECT_EQ(s.bytes_out, s.bytes_in);
}

TEST(CompressorTest, CompressibleDataFollowsTheLinkSpeed) {
  Compressor c(true);
  std::vector<uint8_t> text = testing::TextBytes(3, kBatch), out;
  // A slow link (1 MB/s): compression pays.
  c.NoteSent(1'000'000, 1'000'000'000);
  ASSERT_TRUE(c.Compress(text, {}, out));
  ExpectRoundTrip(out, text);
  // A link at 1 TB/s: no compressor keeps up; send plain and back off.
  for (int i = 0; i < 20; ++i) c.NoteSent(uint64_t(1) << 40, 1'000'000'000);
  EXPECT_FALSE(c.Compress(text, {}, out));
  uint64_t probes = c.stats().probed_batches;
  EXPECT_FALSE(c.Compress(text, {}, out));  // backing off: not even tried
  EXPECT_EQ(c.stats().probed_batches, probes);
  // A bandwidth limit the caller enforces caps the link estimate.
  c.SetLinkCeiling(1'000'000);
  bool compressed = false;
  for (int i = 0; i < 4 && !compressed; ++i) compressed = c.Compress(text, {}, out);
  EXPECT_TRUE(compressed);
}

TEST(CompressorTest, ABackedOffProbeThatPaysResetsTheBackOff) {
  Compressor c(true);
  std::vector<uint8_t> out;
  for (int i = 0; i < 40; ++i) (void)c.Compress(testing::RandomBytes(uint64_t(i), kBatch), {}, out);
  // Text from now on: within one back-off period (<= 64) it is probed, pays,
  // and every later batch is compressed.
  std::vector<uint8_t> text = testing::TextBytes(5, kBatch);
  int first = -1;
  for (int i = 0; i < 70 && first < 0; ++i)
    if (c.Compress(text, {}, out)) first = i;
  ASSERT_GE(first, 0);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(c.Compress(text, {}, out));
}

void ExpectDataLoss(const std::vector<uint8_t>& in, uint32_t max_out, const char* message) {
  std::vector<uint8_t> out;
  base::Status st = Decompress(in, max_out, out);
  ASSERT_FALSE(st.has_value()) << message;
  EXPECT_EQ(st.error().code(), base::Code::kDataLoss);
  EXPECT_NE(st.error().message().find(message), std::string::npos) << st.error().message();
}

std::vector<uint8_t> ZstdFrame(const std::vector<uint8_t>& data, bool declare_size) {
  std::vector<uint8_t> out(ZSTD_compressBound(data.size()));
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
  size_t n;
  if (declare_size) {
    n = ZSTD_compress2(cctx, out.data(), out.size(), data.data(), data.size());
  } else {
    // Streaming without a pledged size, the input given before the end is
    // requested, leaves the size out of the header.
    ZSTD_outBuffer ob{out.data(), out.size(), 0};
    ZSTD_inBuffer ib{data.data(), data.size(), 0};
    while (ib.pos < ib.size) ZSTD_compressStream2(cctx, &ob, &ib, ZSTD_e_continue);
    ZSTD_inBuffer none{nullptr, 0, 0};
    while (ZSTD_compressStream2(cctx, &ob, &none, ZSTD_e_end) != 0) {
    }
    n = ob.pos;
  }
  ZSTD_freeCCtx(cctx);
  out.resize(n);
  return out;
}

TEST(DecompressTest, RefusesBadInput) {
  std::vector<uint8_t> data = testing::TextBytes(9, 10'000);
  std::vector<uint8_t> good = ZstdFrame(data, true);
  ExpectRoundTrip(good, data);
  ExpectDataLoss(testing::RandomBytes(1, 1000), 1 << 20, "not a zstd frame");
  ExpectDataLoss({}, 1 << 20, "not a zstd frame");
  ExpectDataLoss(good, 9'999, "declared size 10000 over the maximum 9999");
  ExpectDataLoss(ZstdFrame(data, false), 1 << 20, "does not declare its size");
  std::vector<uint8_t> trailing = good;
  trailing.push_back(0);
  ExpectDataLoss(trailing, 1 << 20, "1 bytes after the zstd frame");
  ExpectDataLoss({good.begin(), good.end() - 5}, 1 << 20, "truncated zstd frame");
  std::vector<uint8_t> bad_checksum = good;
  bad_checksum.back() ^= 1;
  ExpectDataLoss(bad_checksum, 1 << 20, "zstd:");
}

}  // namespace
}  // namespace transport
