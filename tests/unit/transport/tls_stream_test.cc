// FrameStream over TLS: frames of every size in both directions at once
// (one sender and one receiver thread per end), counters, shutdown, and
// corruption: a forged record and a byte flipped in flight are kDataLoss.
#include <poll.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "base/event_fd.h"
#include "support/temp_dir.h"
#include "tls_test_util.h"
#include "transport/frame_stream.h"
#include "transport_test_util.h"

namespace transport {
namespace {

using testing::Identity;
using testing::kTlsTimeoutMs;

// Two FrameStreams joined by TLS over a loopback TCP connection.
struct TlsStreams {
  std::unique_ptr<FrameStream> client, server;
};

class TlsStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    a_ = testing::MakeIdentity(dir_, "host-a");
    b_ = testing::MakeIdentity(dir_, "host-b");
    a_ctx_ = testing::MakeContext(a_, {b_.fingerprint});
    b_ctx_ = testing::MakeContext(b_, {a_.fingerprint});
    ASSERT_TRUE(a_ctx_ && b_ctx_);
  }

  // Handshakes on pair's ends and wraps them in streams.
  TlsStreams Connect(base::Fd client_fd, base::Fd server_fd) {
    testing::TcpPair pair{std::move(client_fd), std::move(server_fd)};
    auto ends = testing::HandshakeBoth(*a_ctx_, *b_ctx_, pair);
    TlsStreams s;
    EXPECT_TRUE(ends.client->has_value()) << ends.client->error().ToString();
    EXPECT_TRUE(ends.server->has_value()) << ends.server->error().ToString();
    if (!ends.client->has_value() || !ends.server->has_value()) return s;
    s.client = std::make_unique<FrameStream>(std::move(pair.client), "client stream",
                                             std::move(**ends.client));
    s.server = std::make_unique<FrameStream>(std::move(pair.server), "server stream",
                                             std::move(**ends.server));
    return s;
  }
  TlsStreams Connect() {
    auto pair = testing::ConnectedPair();
    return Connect(std::move(pair.client), std::move(pair.server));
  }

  ferry_test::TempDir dir_;
  Identity a_, b_;
  std::shared_ptr<const TlsContext> a_ctx_, b_ctx_;
};

// Sends every payload (as a 7-byte head + the rest, like the engine does).
void SendAll(FrameStream& s, const std::vector<std::vector<uint8_t>>& payloads, std::string* err) {
  for (const auto& p : payloads) {
    std::span<const uint8_t> all(p);
    size_t head = p.size() < 7 ? p.size() : 7;
    base::Status st = s.Send(0x10, all.first(head), all.subspan(head), nullptr, -1, kTlsTimeoutMs);
    if (!st.has_value()) {
      *err = st.error().ToString();
      return;
    }
  }
}

void ReceiveAll(FrameStream& s, const std::vector<std::vector<uint8_t>>& payloads,
                std::string* err) {
  for (size_t i = 0; i < payloads.size(); ++i) {
    base::Result<Frame> f = s.Receive(kMaxFramePayload, -1, kTlsTimeoutMs);
    if (!f.has_value()) {
      *err = f.error().ToString();
      return;
    }
    if (f->payload != payloads[i] || f->sequence != i) {
      *err = "frame " + std::to_string(i) + " differs";
      return;
    }
  }
}

TEST_F(TlsStreamTest, FramesOfEverySizeBothWaysAtOnce) {
  TlsStreams s = Connect();
  ASSERT_TRUE(s.client && s.server);
  ASSERT_NE(s.client->tls_peer(), nullptr);
  EXPECT_EQ(s.client->tls_peer()->fingerprint, b_.fingerprint);
  EXPECT_EQ(s.server->tls_peer()->fingerprint, a_.fingerprint);
  // 0 B, 1 B, 4 MiB, then 64 MiB as four frames of the 16 MiB maximum.
  std::vector<uint8_t> max = testing::RandomBytes(3, kMaxFramePayload);
  std::vector<std::vector<uint8_t>> payloads = {{}, {0x5a}, testing::RandomBytes(2, 4 << 20)};
  for (int i = 0; i < 4; ++i) payloads.push_back(max);
  std::string e1, e2, e3, e4;
  std::thread t1([&] { SendAll(*s.client, payloads, &e1); });
  std::thread t2([&] { ReceiveAll(*s.client, payloads, &e2); });
  std::thread t3([&] { SendAll(*s.server, payloads, &e3); });
  std::thread t4([&] { ReceiveAll(*s.server, payloads, &e4); });
  t1.join();
  t2.join();
  t3.join();
  t4.join();
  EXPECT_EQ(e1, "");
  EXPECT_EQ(e2, "");
  EXPECT_EQ(e3, "");
  EXPECT_EQ(e4, "");
  uint64_t bytes = 0;
  for (const auto& p : payloads) bytes += kFrameHeaderBytes + p.size();
  StreamCounters c = s.client->counters();
  EXPECT_EQ(c.frames_sent, payloads.size());
  EXPECT_EQ(c.bytes_sent, bytes);
  EXPECT_EQ(c.bytes_received, bytes);
  EXPECT_EQ(s.server->counters().bytes_received, bytes);
}

TEST_F(TlsStreamTest, PlainStreamHasNoPeer) {
  auto [a, b] = testing::SocketPair();
  FrameStream plain(std::move(a), "plain");
  EXPECT_EQ(plain.tls_peer(), nullptr);
}

TEST_F(TlsStreamTest, ShutdownUnblocksReceiveAndSend) {
  TlsStreams s = Connect();
  ASSERT_TRUE(s.client && s.server);
  std::optional<base::Result<Frame>> got;
  std::thread t([&] { got.emplace(s.server->Receive(1024)); });
  ::poll(nullptr, 0, 50);  // let it block (the result is the same if not yet)
  s.server->Shutdown();
  t.join();
  ASSERT_FALSE(got->has_value());
  EXPECT_EQ(got->error().code(), base::Code::kUnavailable) << got->error().ToString();
  EXPECT_NE(got->error().message().find("stream shut down"), std::string::npos);
  // A sender blocked on a full connection (nobody reads) is released too.
  std::optional<base::Status> sent;
  std::vector<uint8_t> big(kMaxFramePayload);
  std::thread sender([&] {
    base::Status st = base::Ok();
    for (int i = 0; i < 64 && st.has_value(); ++i) st = s.client->Send(0x10, big);
    sent.emplace(st);
  });
  ::poll(nullptr, 0, 100);
  s.client->Shutdown();
  sender.join();
  ASSERT_FALSE(sent->has_value());
  EXPECT_EQ(sent->error().code(), base::Code::kUnavailable) << sent->error().ToString();
}

TEST_F(TlsStreamTest, ForgedRecordIsDataLoss) {
  auto pair = testing::ConnectedPair();
  int client_fd = pair.client.get();
  TlsStreams s = Connect(std::move(pair.client), std::move(pair.server));
  ASSERT_TRUE(s.client && s.server);
  std::vector<uint8_t> hello = {1, 2, 3};
  ASSERT_TRUE(s.client->Send(0x10, hello).has_value());
  auto f = s.server->Receive(1024, -1, kTlsTimeoutMs);
  ASSERT_TRUE(f.has_value()) << f.error().ToString();
  // An application-data record whose tag cannot verify.
  std::vector<uint8_t> forged = {0x17, 0x03, 0x03, 0x00, 0x20};
  std::vector<uint8_t> junk = testing::RandomBytes(7, 32);
  forged.insert(forged.end(), junk.begin(), junk.end());
  testing::WriteRaw(client_fd, forged);
  auto bad = s.server->Receive(1024, -1, kTlsTimeoutMs);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), base::Code::kDataLoss) << bad.error().ToString();
  EXPECT_NE(bad.error().message().find(
                "server stream: TLS record failed authentication (corrupted or forged stream)"),
            std::string::npos)
      << bad.error().message();
}

// Forwards bytes between two sockets, flipping one bit in the first chunk
// from client to server after arm().
class FlippingRelay {
 public:
  FlippingRelay(base::Fd to_client, base::Fd to_server)
      : to_client_(std::move(to_client)),
        to_server_(std::move(to_server)),
        stop_(std::move(*base::EventFd::Create())) {
    thread_ = std::thread([this] { Run(); });
  }
  ~FlippingRelay() {
    (void)stop_.Signal();
    thread_.join();
  }
  void Arm() { armed_ = true; }

 private:
  void Run() {
    std::vector<uint8_t> buf(1 << 16);
    for (;;) {
      pollfd fds[3] = {
          {to_client_.get(), POLLIN, 0}, {to_server_.get(), POLLIN, 0}, {stop_.fd(), POLLIN, 0}};
      if (::poll(fds, 3, -1) < 0 || fds[2].revents) return;
      for (int i = 0; i < 2; ++i) {
        if (!fds[i].revents) continue;
        ssize_t n = ::recv(fds[i].fd, buf.data(), buf.size(), 0);
        if (n <= 0) return;
        if (i == 0 && armed_.exchange(false)) buf[size_t(n) / 2] ^= 0x01;
        int to = i == 0 ? to_server_.get() : to_client_.get();
        if (!base::WriteAll(to, buf.data(), size_t(n)).has_value()) return;
      }
    }
  }

  base::Fd to_client_, to_server_;
  base::EventFd stop_;
  std::atomic<bool> armed_{false};
  std::thread thread_;
};

TEST_F(TlsStreamTest, ByteFlippedInFlightIsDataLoss) {
  auto front = testing::ConnectedPair();  // client <-> relay
  auto back = testing::ConnectedPair();   // relay <-> server
  FlippingRelay relay(std::move(front.server), std::move(back.client));
  TlsStreams s = Connect(std::move(front.client), std::move(back.server));
  ASSERT_TRUE(s.client && s.server);
  std::vector<uint8_t> payload = testing::RandomBytes(11, 1000);
  ASSERT_TRUE(s.client->Send(0x10, payload).has_value());
  auto f = s.server->Receive(4096, -1, kTlsTimeoutMs);
  ASSERT_TRUE(f.has_value()) << f.error().ToString();
  EXPECT_EQ(f->payload, payload);
  relay.Arm();
  ASSERT_TRUE(s.client->Send(0x10, payload).has_value());
  auto bad = s.server->Receive(4096, -1, kTlsTimeoutMs);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), base::Code::kDataLoss) << bad.error().ToString();
  EXPECT_NE(bad.error().message().find("TLS record failed authentication"), std::string::npos)
      << bad.error().message();
}

}  // namespace
}  // namespace transport
