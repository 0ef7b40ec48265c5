// Many frames both ways at once, over a socketpair and over TCP loopback,
// plain and compressed: every payload arrives intact and in order.
#include <gtest/gtest.h>

#include <thread>

#include "transport/compressor.h"
#include "transport/frame_stream.h"
#include "transport/tcp.h"
#include "transport_test_util.h"

namespace transport {
namespace {

constexpr int kFrames = 1000;
constexpr size_t kMaxSize = 64 << 10;
constexpr int kTimeoutMs = 20'000;

// Sends kFrames seeded frames on one stream while receiving and checking
// kFrames from the other direction of the same stream.
void Converse(FrameStream& s, uint64_t send_seed, uint64_t receive_seed, bool compress,
              Compressor::Stats& stats) {
  Compressor compressor(compress);
  std::thread sender([&] {
    for (int i = 0; i < kFrames; ++i) {
      std::vector<uint8_t> p = testing::SeededPayload(send_seed, uint64_t(i), kMaxSize);
      // Split the payload to exercise the two-span path.
      size_t cut = p.size() / 3;
      std::span<const uint8_t> all(p);
      base::Status st = s.Send(uint16_t(16 + i % 8), all.first(cut), all.subspan(cut),
                               compress ? &compressor : nullptr, -1, kTimeoutMs);
      ASSERT_TRUE(st.has_value()) << st.error().ToString();
    }
  });
  for (int i = 0; i < kFrames; ++i) {
    auto f = s.Receive(uint32_t(kMaxSize), -1, kTimeoutMs);
    ASSERT_TRUE(f.has_value()) << f.error().ToString();
    ASSERT_EQ(f->sequence, uint64_t(i));
    ASSERT_EQ(f->type, 16 + i % 8);
    ASSERT_EQ(f->payload, testing::SeededPayload(receive_seed, uint64_t(i), kMaxSize)) << i;
  }
  sender.join();
  stats = compressor.stats();
}

void RunBothWays(FrameStream& left, FrameStream& right, bool compress) {
  Compressor::Stats left_stats, right_stats;
  std::thread t([&] { Converse(right, 2, 1, compress, right_stats); });
  Converse(left, 1, 2, compress, left_stats);
  t.join();
  for (const FrameStream* s : {&left, &right}) {
    StreamCounters c = s->counters();
    EXPECT_EQ(c.frames_sent, uint64_t(kFrames));
    EXPECT_EQ(c.frames_received, uint64_t(kFrames));
  }
  // What one side sent on the wire is what the other received.
  EXPECT_EQ(left.counters().bytes_sent, right.counters().bytes_received);
  EXPECT_EQ(right.counters().bytes_sent, left.counters().bytes_received);
  if (compress) {
    // A third of the frames are mostly zero and always compress.
    EXPECT_GT(left_stats.compressed_batches, uint64_t(kFrames / 5));
    EXPECT_LT(left.counters().bytes_sent, left.counters().payload_bytes_sent);
  } else {
    EXPECT_EQ(left.counters().bytes_sent,
              left.counters().payload_bytes_sent + kFrames * kFrameHeaderBytes);
  }
}

class RoundTripTest : public ::testing::TestWithParam<bool> {};

TEST_P(RoundTripTest, SocketPair) {
  auto [a, b] = testing::SocketPair();
  FrameStream left(std::move(a), "left"), right(std::move(b), "right");
  RunBothWays(left, right, GetParam());
}

TEST_P(RoundTripTest, TcpLoopback) {
  auto listener = TcpListener::Bind("127.0.0.1", 0);
  ASSERT_TRUE(listener.has_value()) << listener.error().ToString();
  base::Result<std::pair<base::Fd, PeerAddress>> accepted =
      base::Error(base::Code::kUnknown, "not run");
  std::thread acceptor([&] { accepted = listener->Accept(-1, kTimeoutMs); });
  auto connected = TcpConnect("127.0.0.1", listener->port(), "", kTimeoutMs);
  acceptor.join();
  ASSERT_TRUE(connected.has_value()) << connected.error().ToString();
  ASSERT_TRUE(accepted.has_value()) << accepted.error().ToString();
  FrameStream left(std::move(*connected), "left");
  FrameStream right(std::move(accepted->first), "right");
  RunBothWays(left, right, GetParam());
}

INSTANTIATE_TEST_SUITE_P(Compression, RoundTripTest, ::testing::Bool(), [](const auto& param_info) {
  return param_info.param ? "Zstd" : "Plain";
});

}  // namespace
}  // namespace transport
