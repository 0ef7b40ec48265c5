// Pieces of the live-move engine that need no guest: the convergence model
// and the peer sink's choice of stream.
#include <gtest/gtest.h>

#include <sys/socket.h>

#include "base/fd.h"
#include "memory_precopy.h"
#include "peer_sink.h"
#include "stream_pool.h"

namespace appliance {
namespace {

TEST(ConvergenceModelTest, ThrottleRisesFromRoundThreeWhenTheDirtySetDoesNotShrink) {
  EXPECT_EQ(ConvergenceModel::NextThrottle(2, 1000, 1000, 0), 0) << "not before round 3";
  EXPECT_EQ(ConvergenceModel::NextThrottle(3, 1000, 750, 0), 0) << "shrunk by a quarter";
  EXPECT_EQ(ConvergenceModel::NextThrottle(3, 1000, 751, 0), 20);
  EXPECT_EQ(ConvergenceModel::NextThrottle(4, 1000, 1000, 20), 30);
  EXPECT_EQ(ConvergenceModel::NextThrottle(9, 1000, 1200, 90), 90) << "capped";
}

TEST(ConvergenceModelTest, PredictionUsesMeasuredBandwidthCappedByTheLimit) {
  ConvergenceModel m(0);
  m.NoteSend(100 << 20, 1.0);  // 100 MiB/s
  EXPECT_NEAR(m.PredictMs(10 << 20), 100.0 + m.overhead_ms(), 0.01);
  m.NoteSend(1000, 0.5);  // too small a sample: ignored (pooled)
  EXPECT_NEAR(m.bandwidth(), 100.0 * (1 << 20), 1.0);
  ConvergenceModel limited(10 << 20);
  limited.NoteSend(100 << 20, 1.0);
  EXPECT_NEAR(limited.bandwidth(), 10.0 * (1 << 20), 1.0);
}

// PeerSink through a real StreamPool over socketpairs: extents split at 1 MiB
// regions, each piece on stream (disk * 7919 + region) % N, in order, and
// StreamEnd counts match.
TEST(PeerSinkTest, SplitsAtRegionsAndPicksTheStreamByRegion) {
  constexpr size_t kStreams = 3;
  StreamPool::Options po;
  std::vector<std::unique_ptr<transport::FrameStream>> far;
  for (size_t i = 0; i < kStreams; ++i) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    po.streams.push_back(
        std::make_unique<transport::FrameStream>(base::Fd(sv[0]), "near " + std::to_string(i)));
    far.push_back(
        std::make_unique<transport::FrameStream>(base::Fd(sv[1]), "far " + std::to_string(i)));
  }
  po.compression = false;
  auto pool = StreamPool::Start(std::move(po));
  ASSERT_TRUE(pool.has_value()) << pool.error().ToString();
  PeerSink sink(**pool, 2, 8 << 20, true, "disk 2", -1);
  std::vector<uint8_t> data((1 << 20) + 8192, 0xab);
  // [1 MiB - 4 KiB, 2 MiB + 4 KiB): three pieces in regions 0, 1, 2.
  ASSERT_TRUE(sink.WriteExtent((1 << 20) - 4096, data).has_value());
  ASSERT_TRUE(sink.WriteZeroes(5 << 20, 4096).has_value());
  struct Want {
    size_t stream;
    uint64_t offset, length;
    bool zeroes;
  };
  const std::vector<Want> want = {{(2 * 7919 + 0) % kStreams, (1 << 20) - 4096, 4096, false},
                                  {(2 * 7919 + 1) % kStreams, 1 << 20, 1 << 20, false},
                                  {(2 * 7919 + 2) % kStreams, 2 << 20, 4096, false},
                                  {(2 * 7919 + 5) % kStreams, 5 << 20, 4096, true}};
  std::vector<uint64_t> sizes = {8 << 20, 8 << 20, 8 << 20};
  std::vector<uint64_t> per_stream(kStreams, 0);
  for (const Want& w : want) {
    auto f = far[w.stream]->Receive(transport::kMaxFramePayload, -1, 2000);
    ASSERT_TRUE(f.has_value()) << f.error().ToString();
    ASSERT_EQ(f->type, uint16_t(MoveFrame::kDiskExtent));
    auto e = DecodeDiskExtent(f->payload, sizes);
    ASSERT_TRUE(e.has_value()) << e.error().ToString();
    EXPECT_EQ(e->header.disk, 2);
    EXPECT_EQ(e->header.offset, w.offset);
    EXPECT_EQ(e->header.length, w.length);
    EXPECT_EQ(e->header.zeroes, w.zeroes);
    EXPECT_EQ(e->data.size(), w.zeroes ? 0 : w.length);
    ++per_stream[w.stream];
  }
  ASSERT_TRUE((*pool)->Drain(std::nullopt, -1, 5000).has_value());
  for (size_t i = 0; i < kStreams; ++i) EXPECT_EQ((*pool)->data_frames(i), per_stream[i]) << i;
  EXPECT_EQ(sink.bytes_queued(), data.size() + 4096);
  EXPECT_TRUE(sink.Finish().has_value());
  (*pool)->Stop();
}

}  // namespace
}  // namespace appliance
