// FrameStream against a hand-driven peer on a socketpair: what a receiver
// does with every malformed or cut-off frame, timeouts, cancel, shutdown.
#include "transport/frame_stream.h"

#include <sys/socket.h>

#include <gtest/gtest.h>

#include <thread>

#include "base/event_fd.h"
#include "transport/compressor.h"
#include "transport_test_util.h"

namespace transport {
namespace {

using testing::RawFrame;
using testing::SocketPair;
using testing::WriteRaw;

FrameHeader Header(uint16_t type, uint64_t sequence, size_t length) {
  FrameHeader h;
  h.version = 1;
  h.type = type;
  h.length = uint32_t(length);
  h.sequence = sequence;
  return h;
}

std::vector<uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

void ExpectError(const base::Result<Frame>& r, base::Code code, const std::string& message) {
  ASSERT_FALSE(r.has_value()) << "expected " << message;
  EXPECT_EQ(r.error().code(), code) << r.error().ToString();
  EXPECT_NE(r.error().message().find(message), std::string::npos) << r.error().message();
  EXPECT_EQ(r.error().message().rfind("test stream: ", 0), 0u) << r.error().message();
}

TEST(FrameStreamTest, SendsExactlyTheDocumentedBytes) {
  auto [a, b] = SocketPair();
  FrameStream s(std::move(a), "test stream");
  s.set_version(1);
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(s.Send(0x10, {}).has_value());
  std::vector<uint8_t> discard(7 * kFrameHeaderBytes);
  ASSERT_EQ(*base::ReadFull(b.get(), discard.data(), discard.size()), discard.size());
  std::vector<uint8_t> ferry = Bytes("fe"), rry = Bytes("rry");
  ASSERT_TRUE(s.Send(0x10, ferry, rry).has_value());
  std::vector<uint8_t> got(kFrameHeaderBytes + 5);
  ASSERT_EQ(*base::ReadFull(b.get(), got.data(), got.size()), got.size());
  EXPECT_EQ(testing::ToHex(got),
            "46 59 52 46 01 00 10 00 00 00 00 00 05 00 00 00 07 00 00 00 00 00 00 00 d6 6c 46 fb "
            "00 00 00 00 66 65 72 72 79");
  StreamCounters c = s.counters();
  EXPECT_EQ(c.frames_sent, 8u);
  EXPECT_EQ(c.bytes_sent, 8 * kFrameHeaderBytes + 5);
  EXPECT_EQ(c.payload_bytes_sent, 5u);
}

TEST(FrameStreamTest, ReceivesHandBuiltFrames) {
  auto [a, b] = SocketPair();
  FrameStream s(std::move(a), "test stream");
  WriteRaw(b.get(), RawFrame(Header(0x10, 0, 5), Bytes("ferry")));
  WriteRaw(b.get(), RawFrame(Header(0x11, 1, 0), {}));
  auto f = s.Receive(1024);
  ASSERT_TRUE(f.has_value()) << f.error().ToString();
  EXPECT_EQ(f->type, 0x10);
  EXPECT_EQ(f->sequence, 0u);
  EXPECT_EQ(f->payload, Bytes("ferry"));
  f = s.Receive(1024);
  ASSERT_TRUE(f.has_value()) << f.error().ToString();
  EXPECT_EQ(f->type, 0x11);
  EXPECT_TRUE(f->payload.empty());
  EXPECT_EQ(s.counters().frames_received, 2u);
  EXPECT_EQ(s.counters().bytes_received, 2 * kFrameHeaderBytes + 5);
}

// Each case: the bytes the peer sends, what Receive must say.
struct WireCase {
  const char* name;
  std::vector<uint8_t> bytes;
  base::Code code;
  const char* message;
};

std::vector<WireCase> WireCases() {
  std::vector<WireCase> cases;
  std::vector<uint8_t> good = RawFrame(Header(0x10, 0, 5), Bytes("ferry"));
  auto flipped = [&](size_t byte, uint8_t bit) {
    std::vector<uint8_t> v = good;
    v[byte] ^= bit;
    return v;
  };
  cases.push_back({"BadMagic", flipped(0, 0x01), base::Code::kDataLoss, "bad magic"});
  // A flipped header bit the structural checks cannot see: the CRC catches it.
  cases.push_back(
      {"HeaderBitFlip", flipped(17, 0x04), base::Code::kDataLoss, "frame CRC mismatch"});
  cases.push_back(
      {"PayloadBitFlip", flipped(34, 0x10), base::Code::kDataLoss, "frame CRC mismatch"});
  cases.push_back({"CrcBitFlip", flipped(25, 0x80), base::Code::kDataLoss, "frame CRC mismatch"});
  cases.push_back({"SequenceGap", RawFrame(Header(0x10, 1, 5), Bytes("ferry")),
                   base::Code::kDataLoss, "frame out of sequence: expected 0, got 1"});
  FrameHeader v99 = Header(0x10, 0, 5);
  v99.version = 99;
  cases.push_back({"Version99", RawFrame(v99, Bytes("ferry")), base::Code::kDataLoss,
                   "unsupported version 99"});
  FrameHeader flags = Header(0x10, 0, 5);
  flags.flags = 0x4;
  cases.push_back(
      {"UnknownFlag", RawFrame(flags, Bytes("ferry")), base::Code::kDataLoss, "unknown flag bits"});
  std::vector<uint8_t> reserved = good;
  reserved[31] = 1;
  cases.push_back({"ReservedNonzero", reserved, base::Code::kDataLoss, "reserved field"});
  cases.push_back({"LengthOverMax", RawFrame(Header(0x10, 0, 2000), std::vector<uint8_t>(2000)),
                   base::Code::kDataLoss, "length 2000 over the maximum 1024"});
  FrameHeader not_zstd = Header(0x10, 0, 5);
  not_zstd.flags = kFlagCompressed;
  cases.push_back({"CompressedGarbage", RawFrame(not_zstd, Bytes("ferry")), base::Code::kDataLoss,
                   "bad compressed payload"});
  return cases;
}

TEST(FrameStreamTest, MalformedFramesAreRefusedAndPoisonTheStream) {
  for (const WireCase& c : WireCases()) {
    SCOPED_TRACE(c.name);
    auto [a, b] = SocketPair();
    FrameStream s(std::move(a), "test stream");
    WriteRaw(b.get(), c.bytes);
    ExpectError(s.Receive(1024), c.code, c.message);
    // Nothing after a bad frame can be trusted.
    WriteRaw(b.get(), RawFrame(Header(0x10, 1, 0), {}));
    ExpectError(s.Receive(1024), base::Code::kFailedPrecondition, "earlier receive failed");
  }
}

TEST(FrameStreamTest, NegotiatedVersionIsEnforced) {
  auto [a, b] = SocketPair();
  FrameStream s(std::move(a), "test stream");
  s.set_version(1);
  WriteRaw(b.get(), RawFrame(Header(0x10, 0, 0), {}));
  EXPECT_TRUE(s.Receive(1024).has_value());
  // Version 2 would be refused by DecodeFrameHeader in this build; the
  // negotiated-version check itself is covered by a stream set to 2 instead.
  s.set_version(2);
  WriteRaw(b.get(), RawFrame(Header(0x10, 1, 0), {}));
  ExpectError(s.Receive(1024), base::Code::kDataLoss,
              "frame version 1 differs from the negotiated 2");
}

TEST(FrameStreamTest, TruncationAtEveryByte) {
  std::vector<uint8_t> good = RawFrame(Header(0x10, 0, 5), Bytes("ferry"));
  for (size_t cut = 0; cut < good.size(); ++cut) {
    SCOPED_TRACE(cut);
    auto [a, b] = SocketPair();
    FrameStream s(std::move(a), "test stream");
    WriteRaw(b.get(), {good.begin(), good.begin() + long(cut)});
    b.Reset();
    if (cut == 0) {
      ExpectError(s.Receive(1024), base::Code::kUnavailable, "connection closed by peer");
    } else {
      ExpectError(s.Receive(1024), base::Code::kDataLoss, "truncated frame");
    }
  }
}

TEST(FrameStreamTest, DecompressedSizeOverMaxIsDataLoss) {
  auto [a, b] = SocketPair();
  FrameStream sender(std::move(a), "sender");
  FrameStream s(std::move(b), "test stream");
  Compressor c(true);
  std::vector<uint8_t> zeros(64 << 10);
  ASSERT_TRUE(sender.Send(0x10, zeros, {}, &c).has_value());
  ASSERT_EQ(c.stats().compressed_batches, 1u);
  ExpectError(s.Receive(4096), base::Code::kDataLoss, "declared size 65536 over the maximum 4096");
}

TEST(FrameStreamTest, TimeoutBeforeAnyByteLeavesTheStreamUsable) {
  auto [a, b] = SocketPair();
  FrameStream s(std::move(a), "test stream");
  ExpectError(s.Receive(1024, -1, 20), base::Code::kDeadlineExceeded,
              "timed out waiting for a frame");
  WriteRaw(b.get(), RawFrame(Header(0x10, 0, 5), Bytes("ferry")));
  EXPECT_TRUE(s.Receive(1024, -1, 1000).has_value());
}

TEST(FrameStreamTest, TimeoutMidFrameBreaksTheStream) {
  auto [a, b] = SocketPair();
  FrameStream s(std::move(a), "test stream");
  std::vector<uint8_t> good = RawFrame(Header(0x10, 0, 5), Bytes("ferry"));
  WriteRaw(b.get(), {good.begin(), good.begin() + 10});
  ExpectError(s.Receive(1024, -1, 20), base::Code::kDeadlineExceeded, "timed out");
  WriteRaw(b.get(), {good.begin() + 10, good.end()});
  ExpectError(s.Receive(1024, -1, 20), base::Code::kFailedPrecondition, "earlier receive failed");
}

TEST(FrameStreamTest, CancelEndsAWait) {
  auto [a, b] = SocketPair();
  FrameStream s(std::move(a), "test stream");
  auto cancel = base::EventFd::Create();
  ASSERT_TRUE(cancel.has_value());
  ASSERT_TRUE(cancel->Signal().has_value());
  ExpectError(s.Receive(1024, cancel->fd(), -1), base::Code::kCancelled, "cancelled");
}

TEST(FrameStreamTest, ShutdownUnblocksAReceiverInAnotherThread) {
  auto [a, b] = SocketPair();
  FrameStream s(std::move(a), "test stream");
  base::Result<Frame> result = base::Error(base::Code::kUnknown, "not run");
  std::thread receiver([&] { result = s.Receive(1024); });
  s.Shutdown();
  receiver.join();
  ExpectError(result, base::Code::kUnavailable, "shut down");
}

TEST(FrameStreamTest, SendToAClosedPeerIsUnavailable) {
  auto [a, b] = SocketPair();
  FrameStream s(std::move(a), "test stream");
  b.Reset();
  base::Status st = s.Send(0x10, Bytes("ferry"));
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code(), base::Code::kUnavailable);
  EXPECT_EQ(st.error().message(), "test stream: connection closed by peer");
}

TEST(FrameStreamTest, SendTimeoutMidFrameBreaksTheSendSide) {
  auto [a, b] = SocketPair();
  FrameStream s(std::move(a), "test stream");
  // Far more than a socketpair buffers, and nobody reads.
  std::vector<uint8_t> big(kMaxFramePayload);
  base::Status st = s.Send(0x10, big, {}, nullptr, -1, 30);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code(), base::Code::kDeadlineExceeded);
  st = s.Send(0x10, {});
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code(), base::Code::kFailedPrecondition);
}

TEST(FrameStreamTest, SendRefusesBadArguments) {
  auto [a, b] = SocketPair();
  FrameStream s(std::move(a), "test stream");
  EXPECT_EQ(s.Send(0, {}).error().code(), base::Code::kInvalidArgument);
  std::vector<uint8_t> big(kMaxFramePayload), one(1);
  EXPECT_EQ(s.Send(0x10, big, one).error().code(), base::Code::kInvalidArgument);
}

TEST(FrameStreamTest, ErrorFramesAreDeliveredToTheCaller) {
  auto [a, b] = SocketPair();
  FrameStream sender(std::move(a), "sender");
  FrameStream s(std::move(b), "test stream");
  sender.SendError(base::Error(base::Code::kAborted, "move cancelled by the admin"));
  auto f = s.Receive(1024);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->type, uint16_t(FrameType::kError));
  base::Error e = DecodeErrorPayload(f->payload);
  EXPECT_EQ(e.code(), base::Code::kAborted);
  EXPECT_EQ(e.message(), "peer: move cancelled by the admin");
}

}  // namespace
}  // namespace transport
