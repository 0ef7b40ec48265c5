// The hello exchange between two FrameStreams: negotiation, refusal of a
// version we do not share, and of a stream that does not start with hello.
#include <gtest/gtest.h>

#include <thread>

#include "base/event_fd.h"
#include "transport/frame_stream.h"
#include "transport_test_util.h"

namespace transport {
namespace {

constexpr int kTimeoutMs = 5000;

struct Pair {
  Pair() {
    auto [a, b] = testing::SocketPair();
    client = std::make_unique<FrameStream>(std::move(a), "client stream");
    server = std::make_unique<FrameStream>(std::move(b), "server stream");
  }
  std::unique_ptr<FrameStream> client, server;
};

TEST(StreamOpeningTest, NegotiatesAndReturnsThePeersHello) {
  Pair p;
  Hello hello;
  hello.role = StreamRole::kData;
  hello.stream_index = 2;
  hello.stream_count = 3;
  hello.migration_id[15] = 0xab;
  base::Result<Hello> got = base::Error(base::Code::kUnknown, "not run");
  std::thread server([&] { got = ServerHello(*p.server, kTimeoutMs); });
  auto reply = ClientHello(*p.client, hello, kTimeoutMs);
  server.join();
  ASSERT_TRUE(reply.has_value()) << reply.error().ToString();
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  EXPECT_EQ(reply->version, kProtocolVersion);
  EXPECT_EQ(p.client->version(), kProtocolVersion);
  EXPECT_EQ(p.server->version(), kProtocolVersion);
  EXPECT_EQ(got->role, StreamRole::kData);
  EXPECT_EQ(got->stream_index, 2);
  EXPECT_EQ(got->migration_id[15], 0xab);
  // Application frames follow with the next sequence numbers.
  ASSERT_TRUE(p.client->Send(kFirstApplicationFrameType, {}).has_value());
  auto f = p.server->Receive(1024, -1, kTimeoutMs);
  ASSERT_TRUE(f.has_value()) << f.error().ToString();
  EXPECT_EQ(f->sequence, 1u);
}

TEST(StreamOpeningTest, NoCommonVersionIsReportedOnBothSides) {
  Pair p;
  Hello hello;
  hello.min_version = kProtocolVersion + 1;  // a future peer that dropped ours
  hello.max_version = kProtocolVersion + 3;
  base::Result<Hello> got = base::Error(base::Code::kUnknown, "not run");
  std::thread server([&] { got = ServerHello(*p.server, kTimeoutMs); });
  auto reply = ClientHello(*p.client, hello, kTimeoutMs);
  server.join();
  std::string expected = "no common protocol version (peer speaks 2..4, we speak 1..1)";
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code(), base::Code::kFailedPrecondition);
  EXPECT_EQ(got.error().message(), "server stream: " + expected);
  ASSERT_FALSE(reply.has_value());
  EXPECT_EQ(reply.error().code(), base::Code::kFailedPrecondition);
  EXPECT_EQ(reply.error().message(), "client stream: peer: " + expected);
}

TEST(StreamOpeningTest, NonHelloFirstFrameIsRefused) {
  Pair p;
  base::Result<Hello> got = base::Error(base::Code::kUnknown, "not run");
  std::thread server([&] { got = ServerHello(*p.server, kTimeoutMs); });
  ASSERT_TRUE(p.client->Send(kFirstApplicationFrameType, {}).has_value());
  server.join();
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code(), base::Code::kDataLoss);
  EXPECT_NE(got.error().message().find("expected a hello as the first frame, got a type 16 frame"),
            std::string::npos)
      << got.error().message();
  // The client is told why before the stream goes away.
  auto f = p.client->Receive(1024, -1, kTimeoutMs);
  ASSERT_TRUE(f.has_value()) << f.error().ToString();
  EXPECT_EQ(f->type, uint16_t(FrameType::kError));
  EXPECT_EQ(DecodeErrorPayload(f->payload).code(), base::Code::kDataLoss);
}

TEST(StreamOpeningTest, MalformedHelloIsRefused) {
  Pair p;
  base::Result<Hello> got = base::Error(base::Code::kUnknown, "not run");
  std::thread server([&] { got = ServerHello(*p.server, kTimeoutMs); });
  std::vector<uint8_t> short_hello(10);
  ASSERT_TRUE(p.client->Send(uint16_t(FrameType::kHello), short_hello).has_value());
  server.join();
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code(), base::Code::kDataLoss);
  auto f = p.client->Receive(1024, -1, kTimeoutMs);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->type, uint16_t(FrameType::kError));
}

// The client's side of a refused opening: the error frame the server sent.
base::Error RefusalSeenBy(FrameStream& client) {
  auto f = client.Receive(kMaxHelloPayload, -1, kTimeoutMs);
  if (!f.has_value())
    return base::Error(base::Code::kInternal, "no error frame: " + f.error().ToString());
  if (f->type != uint16_t(FrameType::kError))
    return base::Error(base::Code::kInternal, "no error frame: type " + std::to_string(f->type));
  return DecodeErrorPayload(f->payload);
}

TEST(StreamOpeningTest, ServerTimesOutWithoutAHelloAndSaysSo) {
  Pair p;
  auto got = ServerHello(*p.server, 20);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code(), base::Code::kDeadlineExceeded);
  EXPECT_EQ(got.error().message(),
            "server stream: no complete hello within 20 ms (received 0 bytes)");
  base::Error e = RefusalSeenBy(*p.client);
  EXPECT_EQ(e.code(), base::Code::kDeadlineExceeded) << e.ToString();
  EXPECT_EQ(e.message(), "peer: no complete hello within 20 ms (received 0 bytes)");
}

// Fewer bytes than a header, not ferry: refused when the 4 magic bytes are
// in, long before the timeout, and the text is shown.
TEST(StreamOpeningTest, HttpRequestIsRefusedAtItsFirstFourBytes) {
  Pair p;
  testing::WriteRaw(p.client->fd(), {'G', 'E', 'T', ' ', '/'});
  auto got = ServerHello(*p.server, 60000);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code(), base::Code::kDataLoss);
  base::Error e = RefusalSeenBy(*p.client);
  EXPECT_EQ(e.code(), base::Code::kDataLoss) << e.ToString();
  EXPECT_EQ(e.message(),
            "peer: malformed frame header: bad magic 0x20544547 (expected 0x46525946): the stream "
            "starts with "
            "text \"GET \", an HTTP request? This port speaks the ferry migration protocol "
            "(docs/protocol.md)");
}

TEST(StreamOpeningTest, HelloWithABadCrcIsAnswered) {
  Pair p;
  FrameHeader h;
  h.version = kHelloFrameVersion;
  h.type = uint16_t(FrameType::kHello);
  h.length = uint32_t(kHelloBytes);
  h.crc32c = 0x12345678;  // sent as given: wrong
  testing::WriteRaw(p.client->fd(), testing::RawFrame(h, EncodeHello(Hello{})));
  auto got = ServerHello(*p.server, kTimeoutMs);
  ASSERT_FALSE(got.has_value());
  base::Error e = RefusalSeenBy(*p.client);
  EXPECT_EQ(e.code(), base::Code::kDataLoss) << e.ToString();
  EXPECT_NE(e.message().find("peer: frame CRC mismatch: header says 0x12345678"), std::string::npos)
      << e.message();
}

TEST(StreamOpeningTest, OversizedHelloIsRefusedFromItsHeader) {
  Pair p;
  FrameHeader h;
  h.version = kHelloFrameVersion;
  h.type = uint16_t(FrameType::kHello);
  h.length = 0xffffffffu;
  uint8_t raw[kFrameHeaderBytes];
  EncodeFrameHeader(h, raw);
  testing::WriteRaw(p.client->fd(),
                    std::vector<uint8_t>(raw, raw + sizeof raw));  // no payload follows
  auto got = ServerHello(*p.server, kTimeoutMs);
  ASSERT_FALSE(got.has_value());
  base::Error e = RefusalSeenBy(*p.client);
  EXPECT_EQ(e.code(), base::Code::kDataLoss) << e.ToString();
  EXPECT_EQ(e.message(), "peer: malformed frame header: length 4294967295 over the maximum 4096");
}

TEST(StreamOpeningTest, CancelIsAnsweredAsRetryable) {
  Pair p;
  auto cancel = base::EventFd::Create();
  ASSERT_TRUE(cancel.has_value());
  ASSERT_TRUE(cancel->Signal().has_value());
  auto got = ServerHello(*p.server, kTimeoutMs, cancel->fd());
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code(), base::Code::kCancelled);
  base::Error e = RefusalSeenBy(*p.client);
  EXPECT_EQ(e.code(), base::Code::kUnavailable) << e.ToString();
  EXPECT_EQ(e.message(), "peer: the listener is shutting down");
}

TEST(StreamOpeningTest, APeerThatLeftGetsNothing) {
  Pair p;
  p.client->Shutdown();
  auto got = ServerHello(*p.server, kTimeoutMs);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code(), base::Code::kUnavailable) << got.error().ToString();
  EXPECT_EQ(p.server->counters().frames_sent, 0u);
}

TEST(StreamOpeningTest, ClientRefusesAVersionItDidNotOffer) {
  Pair p;
  std::thread server([&] {
    auto f = p.server->Receive(kMaxHelloPayload, -1, kTimeoutMs);
    ASSERT_TRUE(f.has_value());
    std::vector<uint8_t> reply = EncodeHelloReply(HelloReply{9});
    ASSERT_TRUE(p.server->Send(uint16_t(FrameType::kHelloReply), reply).has_value());
  });
  auto reply = ClientHello(*p.client, Hello{}, kTimeoutMs);
  server.join();
  ASSERT_FALSE(reply.has_value());
  EXPECT_EQ(reply.error().code(), base::Code::kDataLoss);
  EXPECT_NE(reply.error().message().find("peer chose protocol version 9"), std::string::npos);
}

}  // namespace
}  // namespace transport
