// LiveMoveDestination: every way a move breaks before the commit point ends in
// kFailed with a clear error (the fixture: live_move_destination_fixture.h).
#include "live_move_destination_fixture.h"

namespace appliance::dest_test {
namespace {

TEST_F(DestinationTest, StreamEndCountMismatchFails) {
  FERRY_SKIP_WITHOUT_KVM();
  StartDestination(RawPlan());
  auto s = FakeSource::Connect(dest_->port(), 2);
  ASSERT_TRUE(s);
  s->Extent(0, 0, Pattern(4096, 1));  // stream 0
  s->End(0, -1);                      // claims none
  ExpectFailed(s.get(), base::Code::kDataLoss,
               "stream 0: the source sent 0 data frames, 1 arrived");
}

TEST_F(DestinationTest, CorruptedFrameFails) {
  FERRY_SKIP_WITHOUT_KVM();
  StartDestination(RawPlan());
  auto s = FakeSource::Connect(dest_->port(), 2);
  ASSERT_TRUE(s);
  // A stream-end frame, sequence 1 (after the hello), with a flipped CRC bit.
  std::vector<uint8_t> payload = EncodeStreamEnd({0});
  transport::FrameHeader h;
  h.version = s->streams[1]->version();
  h.type = uint16_t(MoveFrame::kStreamEnd);
  h.length = uint32_t(payload.size());
  h.sequence = 1;
  uint8_t raw[transport::kFrameHeaderBytes];
  transport::EncodeFrameHeader(h, raw);
  h.crc32c = transport::FrameCrc(raw, payload) ^ 1;
  transport::EncodeFrameHeader(h, raw);
  ASSERT_TRUE(base::WriteAll(s->streams[1]->fd(), raw, sizeof raw));
  ASSERT_TRUE(base::WriteAll(s->streams[1]->fd(), payload.data(), payload.size()));
  ExpectFailed(s.get(), base::Code::kDataLoss, "frame CRC mismatch");
  EXPECT_NE(dest_->error().message().find("stream 1"), std::string::npos)
      << dest_->error().ToString();
}

TEST_F(DestinationTest, PageBeyondMemoryFails) {
  FERRY_SKIP_WITHOUT_KVM();
  StartDestination(RawPlan());
  auto s = FakeSource::Connect(dest_->port(), 2);
  ASSERT_TRUE(s);
  const uint64_t beyond = kMemory / kPageBytes;  // group 8 -> stream 0
  std::vector<uint8_t> page(kPageBytes, 1);
  s->Data(0, MoveFrame::kPageBatch, EncodePageBatchHeader(std::vector<PageEntry>{{beyond, false}}),
          page);
  ExpectFailed(s.get(), base::Code::kDataLoss, "page 2048 is beyond guest memory (2048 pages)");
}

TEST_F(DestinationTest, FrameOnTheWrongStreamFails) {
  FERRY_SKIP_WITHOUT_KVM();
  StartDestination(RawPlan());
  auto s = FakeSource::Connect(dest_->port(), 2);
  ASSERT_TRUE(s);
  std::vector<uint8_t> page(kPageBytes, 1);
  // Group 1 belongs on stream 1.
  s->Data(0, MoveFrame::kPageBatch, EncodePageBatchHeader(std::vector<PageEntry>{{256, false}}),
          page);
  ExpectFailed(s.get(), base::Code::kDataLoss,
               "page group 1 belongs on stream 1 (ordering rule), not 0");
}

TEST_F(DestinationTest, StreamClosedEarlyFails) {
  FERRY_SKIP_WITHOUT_KVM();
  StartDestination(RawPlan());
  auto s = FakeSource::Connect(dest_->port(), 2);
  ASSERT_TRUE(s);
  s->Extent(0, 1 << 20, Pattern(4096, 1));  // region 1 -> stream 1
  s->streams[1]->Shutdown();
  ExpectFailed(s.get(), base::Code::kUnavailable, "stream 1 closed before the move completed");
}

TEST_F(DestinationTest, SourceAbortFails) {
  FERRY_SKIP_WITHOUT_KVM();
  StartDestination(RawPlan());
  auto s = FakeSource::Connect(dest_->port(), 2);
  ASSERT_TRUE(s);
  s->Control(0, MoveFrame::kAbort, JsonPayload({{"reason", "did not converge"}}));
  ExpectFailed(s.get(), base::Code::kAborted, "the source aborted the move: did not converge");
}

TEST_F(DestinationTest, LocalAbortFailsAndTellsTheSource) {
  FERRY_SKIP_WITHOUT_KVM();
  StartDestination(RawPlan());
  auto s = FakeSource::Connect(dest_->port(), 2);
  ASSERT_TRUE(s);
  // Stream 0 is registered once its hello is answered and the acceptor has
  // moved on; wait so the error has somewhere to go.
  EXPECT_TRUE(ferry_test::WaitFor(
      "both streams to be registered", std::chrono::seconds(10),
      [&] { return dest_->Status().streams.size() >= 2; }, std::chrono::milliseconds(5)));
  dest_->Abort("stopped by request");
  ExpectFailed(s.get(), base::Code::kAborted, "incoming move aborted: stopped by request");
}

TEST_F(DestinationTest, NoSourceWithinTheConnectTimeoutFails) {
  FERRY_SKIP_WITHOUT_KVM();
  StartDestination(RawPlan(), /*connect_timeout_ms=*/300);
  ExpectFailed(nullptr, base::Code::kDeadlineExceeded,
               "no data stream from the source within 300 ms");
}

TEST_F(DestinationTest, DeviceStateBeforeEveryStreamEndedWaitsAndMissingEndTimesOut) {
  FERRY_SKIP_WITHOUT_KVM();
  StartDestination(RawPlan(), 10000, /*idle_timeout_ms=*/500);
  auto s = FakeSource::Connect(dest_->port(), 2);
  ASSERT_TRUE(s);
  s->End(0);
  s->Control(0, MoveFrame::kDeviceState, std::vector<uint8_t>{1, 2, 3});
  // Stream 1 never ends: its receiver times out; nothing is committed.
  ExpectFailed(s.get(), base::Code::kDeadlineExceeded, "(stream 1 has not ended)");
  EXPECT_NE(dest_->error().message().find("the source sent nothing for"), std::string::npos);
}

// Silence is judged for the whole move: a stream with nothing to carry may
// stay quiet far longer than the idle timeout while another is busy.
TEST_F(DestinationTest, AQuietStreamIsFineWhileAnotherCarriesData) {
  FERRY_SKIP_WITHOUT_KVM();
  // Stream 0 sends every 100 ms, well inside the timeout even on a slow
  // host; stream 1 stays quiet three times as long as the timeout.
  StartDestination(RawPlan(), 10000, /*idle_timeout_ms=*/1000);
  auto s = FakeSource::Connect(dest_->port(), 2);
  ASSERT_TRUE(s);
  for (int i = 0; i < 30; ++i) {  // ~3 s of traffic on stream 0 only
    s->Extent(0, 0, Pattern(4096, uint8_t(i)));
    // A sleep on purpose: it paces the busy stream while stream 1 stays quiet.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(dest_->outcome(), LiveMoveDestination::Outcome::kRunning) << dest_->error().ToString();
  s->End(0);
  s->End(1);
  s->Control(0, MoveFrame::kDeviceState, std::vector<uint8_t>{1, 2, 3});
  ExpectFailed(s.get(), base::Code::kDataLoss, "build the vm from its device state");
  // The disk was finished and renamed before the state was tried.
  EXPECT_EQ(ReadBytes(dir_ / "dst/data.raw").size(), 2u << 20);
}

TEST_F(DestinationTest, BadDeviceStateFailsBeforeTheCommitPoint) {
  FERRY_SKIP_WITHOUT_KVM();
  StartDestination(RawPlan());
  auto s = FakeSource::Connect(dest_->port(), 2);
  ASSERT_TRUE(s);
  s->End(0);
  s->End(1);
  s->Control(0, MoveFrame::kDeviceState, std::vector<uint8_t>{1, 2, 3});
  ExpectFailed(s.get(), base::Code::kDataLoss, "build the vm from its device state");
}

TEST_F(DestinationTest, WrongMigrationIdIsRejected) {
  FERRY_SKIP_WITHOUT_KVM();
  StartDestination(RawPlan(), /*connect_timeout_ms=*/1500);
  auto fd = transport::TcpConnect("127.0.0.1", dest_->port(), "", 5000);
  ASSERT_TRUE(fd.has_value());
  transport::FrameStream fs(std::move(*fd), "stray");
  transport::Hello h;
  h.role = transport::StreamRole::kData;
  h.migration_id = *ParseMigrationId("00000000-0000-4000-8000-000000000000");
  h.stream_count = 1;
  ASSERT_TRUE(transport::ClientHello(fs, h, 5000).has_value());
  auto f = fs.Receive(transport::kMaxFramePayload, -1, 5000);
  ASSERT_TRUE(f.has_value()) << f.error().ToString();
  ASSERT_EQ(f->type, uint16_t(transport::FrameType::kError));
  EXPECT_NE(
      transport::DecodeErrorPayload(f->payload).message().find("is not the one expected here"),
      std::string::npos);
  // The move itself goes on waiting for the real source (and then times out).
  ExpectFailed(nullptr, base::Code::kDeadlineExceeded, "no data stream from the source");
}

// The data port answers every opening that is not a proper data stream
// (garbage, an HTTP request, a bad CRC, a header declaring 4 GiB, a control
// hello) with an error frame naming the problem, and still accepts the
// move's real streams afterwards.
TEST_F(DestinationTest, BadOpeningsOnTheDataPortGetAnErrorFrameAndTheMoveGoesOn) {
  FERRY_SKIP_WITHOUT_KVM();
  StartDestination(RawPlan());
  const uint16_t port = dest_->port();
  auto expect = [&](const std::vector<uint8_t>& bytes, base::Code code, const std::string& part) {
    base::Error e = test::RefusalOf(port, bytes);
    EXPECT_EQ(e.code(), code) << e.ToString();
    EXPECT_NE(e.message().find(part), std::string::npos) << e.ToString();
  };
  const uint64_t seed = 0x5eed0002;
  SCOPED_TRACE("garbage seed " + std::to_string(seed));
  expect(test::GarbageBytes(seed, 1000), base::Code::kDataLoss,
         "malformed frame header: bad magic");
  expect(test::TextBytes("GET / HTTP/1.1\r\n\r\n"), base::Code::kDataLoss, "an HTTP request?");
  expect(test::HelloFrameBytes(/*crc_xor=*/0x80), base::Code::kDataLoss, "frame CRC mismatch");
  expect(test::HelloHeaderBytes(0xffffffffu), base::Code::kDataLoss,
         "length 4294967295 over the maximum 4096");
  expect(test::HelloFrameBytes(), base::Code::kFailedPrecondition, "not a data stream");

  auto s = FakeSource::Connect(port, 2);
  ASSERT_TRUE(s);
  s->Control(0, MoveFrame::kAbort, JsonPayload({{"reason", "test over"}}));
  ExpectFailed(s.get(), base::Code::kAborted, "the source aborted the move: test over");
}

// A destination file system that fills up: kResourceExhausted naming the file.
TEST_F(DestinationTest, FullDiskFailsWithResourceExhaustedNamingTheFile) {
  FERRY_SKIP_WITHOUT_KVM();
  if (::geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs needs root";
  const std::string small = dir_ / "small";
  ASSERT_EQ(::mkdir(small.c_str(), 0755), 0);
  if (::mount("tmpfs", small.c_str(), "tmpfs", 0, "size=2m") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
  mounted_ = true;
  PrepareRequest plan = RawPlan(8 << 20, small + "/data.raw");
  plan.streams = 1;
  StartDestination(plan);
  auto s = FakeSource::Connect(dest_->port(), 1);
  ASSERT_TRUE(s);
  s->lenient = true;
  for (uint64_t region = 0; region < 4; ++region)
    s->Extent(0, region << 20, Pattern(1 << 20, uint8_t(region)));
  ExpectFailed(s.get(), base::Code::kResourceExhausted, small + "/data.raw.part");
}

}  // namespace
}  // namespace appliance::dest_test
