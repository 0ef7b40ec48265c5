// Hello, HelloReply and Error payloads: golden bytes (also in
// docs/protocol.md), malformed payloads, version negotiation.
#include "transport/hello.h"

#include <gtest/gtest.h>

#include "transport_test_util.h"

namespace transport {
namespace {

using testing::FromHex;
using testing::ToHex;

Hello GoldenHello() {
  Hello h;
  h.role = StreamRole::kData;
  h.stream_index = 1;
  h.stream_count = 4;
  for (int i = 0; i < 16; ++i) h.migration_id[size_t(i)] = uint8_t(i);
  return h;
}

// docs/protocol.md: the hello of data stream 1 of 4, sent as frame 0.
constexpr char kGoldenHelloFrame[] =
    "46 59 52 46 01 00 01 00 00 00 00 00 1c 00 00 00 00 00 00 00 00 00 00 00 5d 6b 8c 36 00 00 00 "
    "00 "
    "01 00 01 00 02 00 01 00 04 00 00 00 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f";
constexpr char kGoldenReplyFrame[] =
    "46 59 52 46 01 00 02 00 00 00 00 00 04 00 00 00 00 00 00 00 00 00 00 00 ad c9 2e 2e 00 00 00 "
    "00 "
    "01 00 00 00";
constexpr char kGoldenErrorFrame[] =
    "46 59 52 46 01 00 03 00 00 00 00 00 06 00 00 00 01 00 00 00 00 00 00 00 57 14 24 d5 00 00 00 "
    "00 "
    "09 00 00 00 6e 6f";

std::vector<uint8_t> Frame(uint16_t type, uint64_t sequence, const std::vector<uint8_t>& payload) {
  FrameHeader h;
  h.version = 1;
  h.type = type;
  h.length = uint32_t(payload.size());
  h.sequence = sequence;
  return testing::RawFrame(h, payload);
}

TEST(HelloTest, GoldenBytes) {
  std::vector<uint8_t> payload = EncodeHello(GoldenHello());
  ASSERT_EQ(payload.size(), kHelloBytes);
  EXPECT_EQ(ToHex(Frame(1, 0, payload)), ToHex(FromHex(kGoldenHelloFrame)));
  EXPECT_EQ(ToHex(Frame(2, 0, EncodeHelloReply(HelloReply{1}))), ToHex(FromHex(kGoldenReplyFrame)));
  base::Error e(base::Code::kFailedPrecondition, "no");
  EXPECT_EQ(ToHex(Frame(3, 1, EncodeErrorPayload(e))), ToHex(FromHex(kGoldenErrorFrame)));
}

TEST(HelloTest, RoundTrip) {
  auto h = DecodeHello(EncodeHello(GoldenHello()));
  ASSERT_TRUE(h.has_value()) << h.error().ToString();
  EXPECT_EQ(h->min_version, 1);
  EXPECT_EQ(h->max_version, 1);
  EXPECT_EQ(h->role, StreamRole::kData);
  EXPECT_EQ(h->stream_index, 1);
  EXPECT_EQ(h->stream_count, 4);
  EXPECT_EQ(h->migration_id, GoldenHello().migration_id);
}

TEST(HelloTest, TrailingBytesFromALaterVersionAreIgnored) {
  std::vector<uint8_t> p = EncodeHello(GoldenHello());
  p.insert(p.end(), {1, 2, 3, 4});
  EXPECT_TRUE(DecodeHello(p).has_value());
}

void ExpectMalformed(std::vector<uint8_t> p, const char* message) {
  auto h = DecodeHello(p);
  ASSERT_FALSE(h.has_value()) << message;
  EXPECT_EQ(h.error().code(), base::Code::kDataLoss);
  EXPECT_NE(h.error().message().find(message), std::string::npos) << h.error().message();
}

TEST(HelloTest, MalformedPayloads) {
  std::vector<uint8_t> good = EncodeHello(GoldenHello());
  ExpectMalformed({good.begin(), good.end() - 1}, "payload is 27 bytes, need 28");
  auto with = [&](size_t off, uint8_t v) {
    std::vector<uint8_t> p = good;
    p[off] = v;
    return p;
  };
  ExpectMalformed(with(0, 0), "bad version range 0..1");  // min 0
  ExpectMalformed(with(0, 3), "bad version range 3..1");  // min > max
  ExpectMalformed(with(4, 0), "unknown stream role 0");
  ExpectMalformed(with(4, 3), "unknown stream role 3");
  ExpectMalformed(with(5, 1), "reserved bytes not 0");
  ExpectMalformed(with(11, 1), "reserved bytes not 0");
  ExpectMalformed(with(6, 4), "stream index 4 of 4");
  ExpectMalformed(with(8, 0), "stream index 1 of 0");
}

TEST(HelloReplyTest, Malformed) {
  auto r = DecodeHelloReply(std::vector<uint8_t>{1, 0, 0});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), base::Code::kDataLoss);
  EXPECT_FALSE(DecodeHelloReply(std::vector<uint8_t>{0, 0, 0, 0}).has_value());
  EXPECT_FALSE(DecodeHelloReply(std::vector<uint8_t>{1, 0, 0, 1}).has_value());
}

TEST(NegotiateTest, PicksHighestCommonVersion) {
  Hello h;
  h.min_version = 1;
  h.max_version = 7;  // a newer peer that still speaks 1
  auto v = NegotiateVersion(h);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(*v, kProtocolVersion);
}

TEST(NegotiateTest, NoCommonVersion) {
  Hello h;
  h.min_version = 5;
  h.max_version = 9;
  auto v = NegotiateVersion(h);
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error().code(), base::Code::kFailedPrecondition);
  EXPECT_EQ(v.error().message(), "no common protocol version (peer speaks 5..9, we speak 1..1)");
}

TEST(ErrorPayloadTest, RoundTripSaysItCameFromThePeer) {
  base::Error e(base::Code::kResourceExhausted, "disk full at /srv/vms");
  base::Error d = DecodeErrorPayload(EncodeErrorPayload(e));
  EXPECT_EQ(d.code(), base::Code::kResourceExhausted);
  EXPECT_EQ(d.message(), "peer: disk full at /srv/vms");
}

TEST(ErrorPayloadTest, UnknownCodeAndShortPayload) {
  std::vector<uint8_t> p = {200, 0, 0, 0, 'x'};
  EXPECT_EQ(DecodeErrorPayload(p).code(), base::Code::kUnknown);
  p[0] = 0;  // kOk in an error frame
  EXPECT_EQ(DecodeErrorPayload(p).code(), base::Code::kUnknown);
  base::Error short_one = DecodeErrorPayload(std::vector<uint8_t>{1, 0});
  EXPECT_EQ(short_one.code(), base::Code::kDataLoss);
  EXPECT_NE(short_one.message().find("malformed error frame from peer"), std::string::npos);
}

}  // namespace
}  // namespace transport
