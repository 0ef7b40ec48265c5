// The frame header codec: golden bytes (also in docs/protocol.md) and every
// malformed header a receiver must refuse.
#include "transport/frame.h"

#include <gtest/gtest.h>

#include <string>

#include "transport_test_util.h"

namespace transport {
namespace {

using testing::FromHex;
using testing::ToHex;

// docs/protocol.md, "Golden example": type 0x0010, sequence 7, payload "ferry".
constexpr char kGoldenFrame[] =
    "46 59 52 46 01 00 10 00 00 00 00 00 05 00 00 00 07 00 00 00 00 00 00 00 d6 6c 46 fb 00 00 00 "
    "00 "
    "66 65 72 72 79";

std::vector<uint8_t> GoldenHeader() {
  std::vector<uint8_t> bytes = FromHex(kGoldenFrame);
  bytes.resize(kFrameHeaderBytes);
  return bytes;
}

TEST(FrameHeaderTest, EncodesGoldenBytes) {
  std::vector<uint8_t> payload = {'f', 'e', 'r', 'r', 'y'};
  FrameHeader h;
  h.version = 1;
  h.type = 0x10;
  h.length = 5;
  h.sequence = 7;
  std::vector<uint8_t> out(kFrameHeaderBytes);
  EncodeFrameHeader(h, out.data());
  h.crc32c = FrameCrc(out.data(), payload);
  EXPECT_EQ(h.crc32c, 0xfb466cd6u);
  EncodeFrameHeader(h, out.data());
  out.insert(out.end(), payload.begin(), payload.end());
  EXPECT_EQ(ToHex(out), ToHex(FromHex(kGoldenFrame)));
}

TEST(FrameHeaderTest, MagicSpellsFyrfOnTheWire) {
  std::vector<uint8_t> out(kFrameHeaderBytes);
  FrameHeader h;
  h.type = 1;
  EncodeFrameHeader(h, out.data());
  EXPECT_EQ(std::string(out.begin(), out.begin() + 4), "FYRF");
}

TEST(FrameHeaderTest, DecodesGoldenBytes) {
  std::vector<uint8_t> in = GoldenHeader();
  auto h = DecodeFrameHeader(in.data(), kMaxFramePayload);
  ASSERT_TRUE(h.has_value()) << h.error().ToString();
  EXPECT_EQ(h->version, 1);
  EXPECT_EQ(h->type, 0x10);
  EXPECT_EQ(h->flags, 0u);
  EXPECT_EQ(h->length, 5u);
  EXPECT_EQ(h->sequence, 7u);
  EXPECT_EQ(h->crc32c, 0xfb466cd6u);
}

TEST(FrameHeaderTest, CrcOverTwoSpansEqualsOneSpan) {
  std::vector<uint8_t> header = GoldenHeader();
  std::vector<uint8_t> whole = {'f', 'e', 'r', 'r', 'y'};
  std::vector<uint8_t> a = {'f', 'e'}, b = {'r', 'r', 'y'};
  EXPECT_EQ(FrameCrc(header.data(), a, b), FrameCrc(header.data(), whole));
  // The crc field itself is outside the coverage.
  header[24] ^= 0xff;
  EXPECT_EQ(FrameCrc(header.data(), whole), 0xfb466cd6u);
}

struct Malformed {
  const char* name;
  size_t offset;  // byte to overwrite
  std::vector<uint8_t> bytes;
  const char* message;  // substring the error must contain
};

class MalformedHeaderTest : public ::testing::TestWithParam<Malformed> {};

TEST_P(MalformedHeaderTest, IsDataLossNamingTheProblem) {
  const Malformed& m = GetParam();
  std::vector<uint8_t> in = GoldenHeader();
  std::copy(m.bytes.begin(), m.bytes.end(), in.begin() + long(m.offset));
  auto h = DecodeFrameHeader(in.data(), 1024);
  ASSERT_FALSE(h.has_value()) << m.name;
  EXPECT_EQ(h.error().code(), base::Code::kDataLoss);
  EXPECT_NE(h.error().message().find(m.message), std::string::npos) << h.error().message();
}

INSTANTIATE_TEST_SUITE_P(
    Cases, MalformedHeaderTest,
    ::testing::Values(
        Malformed{"BadMagic", 0, {'F', 'Y', 'R', 'G'}, "bad magic 0x47525946"},
        Malformed{"Version0", 4, {0, 0}, "unsupported version 0"},
        Malformed{"Version99", 4, {99, 0}, "unsupported version 99"},
        Malformed{"Type0", 6, {0, 0}, "frame type 0 is invalid"},
        Malformed{"UnknownFlag", 8, {0, 0, 0, 0x80}, "unknown flag bits 0x80000000"},
        Malformed{"UnknownLowFlag", 8, {0x03, 0, 0, 0}, "unknown flag bits 0x00000002"},
        Malformed{"ReservedNonzero", 28, {0, 1, 0, 0}, "reserved field is 0x00000100"},
        Malformed{
            "LengthOverCallerMax", 12, {0x01, 0x04, 0, 0}, "length 1025 over the maximum 1024"}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(FrameHeaderTest, LengthOverHardCapIsMalformedWhateverTheCallerAllows) {
  std::vector<uint8_t> in = GoldenHeader();
  in[12] = 1;
  in[13] = 0;
  in[14] = 0;
  in[15] = 1;  // 16 MiB + 1
  auto h = DecodeFrameHeader(in.data(), UINT32_MAX);
  ASSERT_FALSE(h.has_value());
  EXPECT_EQ(h.error().code(), base::Code::kDataLoss);
  EXPECT_NE(h.error().message().find("over the maximum 16777216"), std::string::npos)
      << h.error().message();
  // Exactly the cap is fine.
  in[12] = 0;
  in[15] = 1;
  EXPECT_TRUE(DecodeFrameHeader(in.data(), UINT32_MAX).has_value());
}

}  // namespace
}  // namespace transport
