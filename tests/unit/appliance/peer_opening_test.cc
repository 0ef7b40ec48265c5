// The destination ferryd's peer listener (PeerService on 127.0.0.1:0) faced
// with connections that do not open properly: raw TCP peers send garbage, an
// HTTP request, a hello with a bad CRC, a header declaring 4 GiB, half a
// header, or nothing. Each must get the protocol's error frame naming the
// problem (decoded with the transport codec), within the listener's bounds,
// and the listener must go on serving a proper request afterwards.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <vector>

#include "daemon/peer_service.h"
#include "fakes/raw_opening.h"
#include "peer/peer_client.h"
#include "support/temp_dir.h"
#include "support/test_tls.h"
#include "support/wait_for.h"

namespace appliance {
namespace {

using test::RefusalOf;

class PeerOpeningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    vm_options_.host.storage_root = dir_ / "root";
    vm_options_.worker_binary = "/bin/false";  // no VM is started here
    vm_options_.guest_dir = dir_.path();
    auto vms = VmService::Open(vm_options_);
    ASSERT_TRUE(vms.has_value()) << vms.error().ToString();
    vms_ = std::move(*vms);
    options_.host = vm_options_.host;
    options_.host.incoming_enabled = true;
    options_.host.listen_addresses = {config::ListenAddress{"127.0.0.1", 0, "127.0.0.1:0"}};
    options_.worker_binary = "/bin/false";
    options_.host_cpu = HostCpu{"GenuineIntel", {"sse2"}};
    options_.io_timeout_ms = 5000;
    options_.tls = ferry_test::TestTlsContext(dir_ / "host-b", "host-b");
    client_tls_ = ferry_test::TestTlsContext(dir_ / "host-a", "host-a");
  }
  void TearDown() override {
    peer_.reset();
    vms_.reset();
  }

  void StartPeer() {
    auto p = PeerService::Start(*vms_, options_);
    ASSERT_TRUE(p.has_value()) << p.error().ToString();
    peer_ = std::move(*p);
    port_ = peer_->listening().at(0).second;
  }

  PeerEndpoint Endpoint() const { return PeerEndpoint{"127.0.0.1", port_, "", client_tls_, ""}; }
  // A trusted peer's TLS session carrying bytes that are no proper opening.
  base::Error RefusalInsideTls(const std::vector<uint8_t>& bytes) {
    return RefusalOf(port_, bytes, 5000, client_tls_.get());
  }

  // The listener still serves: a Status query of an unknown move is answered.
  void ExpectStillServing() {
    const std::string id = NewMigrationId();
    auto reply = CallPeer(Endpoint(), MoveFrame::kStatusQuery, nlohmann::json{{"migration_id", id}},
                          MoveFrame::kStatusReply, 10000);
    ASSERT_TRUE(reply.has_value()) << reply.error().ToString();
    EXPECT_EQ((*reply)["state"], "unknown");
  }

  static void ExpectRefusal(const base::Error& e, base::Code code, const std::string& part) {
    EXPECT_EQ(e.code(), code) << e.ToString();
    EXPECT_NE(e.message().find(part), std::string::npos) << e.ToString();
  }

  ferry_test::TempDir dir_;
  ServiceOptions vm_options_;
  PeerService::Options options_;
  std::unique_ptr<VmService> vms_;
  std::unique_ptr<PeerService> peer_;
  std::shared_ptr<const transport::TlsContext> client_tls_;
  uint16_t port_ = 0;
};

TEST_F(PeerOpeningTest, RandomGarbageGetsAnErrorFrame) {
  StartPeer();
  const uint64_t seed = 0x5eed0001;
  SCOPED_TRACE("garbage seed " + std::to_string(seed));
  std::vector<uint8_t> garbage = test::GarbageBytes(seed, 1000);
  ExpectRefusal(RefusalInsideTls(garbage), base::Code::kDataLoss,
                "peer: malformed frame header: bad magic 0x");
  ExpectStillServing();
}

TEST_F(PeerOpeningTest, HttpRequestGetsAnErrorFrameSayingSo) {
  StartPeer();
  // 18 bytes: less than a frame header, so only the early magic check can
  // answer before the hello timeout.
  const auto start = std::chrono::steady_clock::now();
  base::Error e = RefusalInsideTls(test::TextBytes("GET / HTTP/1.1\r\n\r\n"));
  ExpectRefusal(e, base::Code::kDataLoss, "bad magic 0x20544547");
  ExpectRefusal(e, base::Code::kDataLoss,
                "an HTTP request? This port speaks the ferry migration protocol");
  EXPECT_LT(std::chrono::steady_clock::now() - start,
            std::chrono::milliseconds(options_.hello_timeout_ms / 2));
  ExpectStillServing();
}

// Below TLS: who may talk at all. Each refusal leaves the listener serving.

TEST_F(PeerOpeningTest, PlaintextFerryHelloIsToldThatTlsIsRequired) {
  StartPeer();
  ExpectRefusal(RefusalOf(port_, test::HelloFrameBytes()), base::Code::kPermissionDenied,
                "peer: this host requires TLS on every peer connection");
  ExpectStillServing();
}

TEST_F(PeerOpeningTest, PlaintextGarbageIsDroppedWithoutAnAnswer) {
  StartPeer();
  base::Error e = RefusalOf(port_, test::GarbageBytes(0x5eed0002, 1000));
  EXPECT_EQ(e.code(), base::Code::kInternal) << e.ToString();  // closed: no frame at all
  ExpectStillServing();
}

TEST_F(PeerOpeningTest, UntrustedCertificateIsRefused) {
  StartPeer();
  // A host with its own self-signed certificate, known to nobody here.
  ASSERT_TRUE(
      transport::GenerateHostIdentity(dir_ / "stranger.crt", dir_ / "stranger.key", "stranger")
          .has_value());
  transport::TlsSettings settings{
      dir_ / "stranger.crt", dir_ / "stranger.key", ferry_test::TestCaCertificate(), {}};
  auto stranger = transport::TlsContext::Create(settings);
  ASSERT_TRUE(stranger.has_value()) << stranger.error().ToString();
  PeerEndpoint from_stranger = Endpoint();
  from_stranger.tls = *stranger;
  auto reply =
      CallPeer(from_stranger, MoveFrame::kStatusQuery,
               nlohmann::json{{"migration_id", NewMigrationId()}}, MoveFrame::kStatusReply, 5000);
  ASSERT_FALSE(reply.has_value());
  EXPECT_EQ(reply.error().code(), base::Code::kPermissionDenied) << reply.error().ToString();
  EXPECT_NE(reply.error().message().find("refused our certificate"), std::string::npos)
      << reply.error().ToString();
  ExpectStillServing();
}

TEST_F(PeerOpeningTest, ClientRefusesAServerItDoesNotTrust) {
  StartPeer();
  // The listener's certificate is trusted (same CA), but not the one asked for.
  PeerEndpoint pinned = Endpoint();
  pinned.expected_fingerprint = client_tls_->fingerprint();  // ours, not the listener's
  auto reply =
      CallPeer(pinned, MoveFrame::kStatusQuery, nlohmann::json{{"migration_id", NewMigrationId()}},
               MoveFrame::kStatusReply, 5000);
  ASSERT_FALSE(reply.has_value());
  EXPECT_EQ(reply.error().code(), base::Code::kPermissionDenied) << reply.error().ToString();
  EXPECT_NE(reply.error().message().find(options_.tls->fingerprint()), std::string::npos)
      << reply.error().ToString();
  ExpectStillServing();
}

TEST_F(PeerOpeningTest, HugeLengthIsRefusedFromTheHeaderAlone) {
  StartPeer();
  // Only the header is sent: the listener must answer without waiting for
  // (or allocating) the 4 GiB it declares.
  ExpectRefusal(RefusalInsideTls(test::HelloHeaderBytes(0xffffffffu)), base::Code::kDataLoss,
                "length 4294967295 over the maximum 4096");
  ExpectStillServing();
}

TEST_F(PeerOpeningTest, IdleAndTricklingPeersAreTimedOut) {
  options_.hello_timeout_ms = 300;
  StartPeer();
  ExpectRefusal(RefusalInsideTls({}), base::Code::kDeadlineExceeded,
                "no complete hello within 300 ms (received 0 bytes)");
  // Half a header, then silence.
  std::vector<uint8_t> half = test::HelloFrameBytes();
  half.resize(16);
  ExpectRefusal(RefusalInsideTls(half), base::Code::kDeadlineExceeded,
                "no complete hello within 300 ms (received 16 bytes)");
  ExpectStillServing();
}

TEST_F(PeerOpeningTest, WellFormedHelloWithTheWrongRoleIsRefused) {
  StartPeer();
  ExpectRefusal(RefusalInsideTls(test::HelloFrameBytes(0, /*data=*/true)),
                base::Code::kInvalidArgument, "accepts control streams only");
  ExpectStillServing();
}

TEST_F(PeerOpeningTest, ConnectionsOverTheLimitAreRefusedWithAnErrorFrame) {
  options_.max_connections = 2;
  StartPeer();
  std::vector<base::Fd> idle;
  for (int i = 0; i < 2; ++i) {
    auto fd = transport::TcpConnect("127.0.0.1", port_, "", 5000);
    ASSERT_TRUE(fd.has_value()) << fd.error().ToString();
    idle.push_back(std::move(*fd));
  }
  // The accept thread takes the idle ones before ours (one listener, FIFO
  // backlog), so the third is over the limit. It sends nothing, so no unread
  // byte can turn the listener's close into a reset.
  ExpectRefusal(RefusalOf(port_, {}), base::Code::kResourceExhausted,
                "too many control connections (2 being served)");
  idle.clear();  // their threads end (the peer closed) and are reaped
  std::string unexpected;
  EXPECT_TRUE(ferry_test::WaitFor(
      "a status query to be served after the idle ones closed", std::chrono::seconds(10),
      [&] {
        auto reply = CallPeer(Endpoint(), MoveFrame::kStatusQuery,
                              nlohmann::json{{"migration_id", NewMigrationId()}},
                              MoveFrame::kStatusReply, 5000);
        if (reply.has_value()) return true;
        // Refused while the idle ones' threads are still ending (a refusal
        // that overtakes our hello may arrive as a reset instead); any other
        // error ends the wait.
        if (reply.error().code() != base::Code::kResourceExhausted &&
            reply.error().code() != base::Code::kUnavailable)
          unexpected = reply.error().ToString();
        return !unexpected.empty();
      },
      std::chrono::milliseconds(20)));
  EXPECT_EQ(unexpected, "");
}

}  // namespace
}  // namespace appliance
