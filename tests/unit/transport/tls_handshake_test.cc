// TLS handshakes over loopback TCP: pinned and CA trust, channel binding,
// and every refusal with its message (untrusted or unexpected certificate,
// no certificate, plaintext ferry peers at either end, garbage, a truncated
// handshake, an idle peer, cancel).
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <thread>

#include "base/event_fd.h"
#include "support/temp_dir.h"
#include "tls_test_util.h"
#include "transport/frame_stream.h"
#include "transport/tcp.h"
#include "transport/tls.h"

namespace transport {
namespace {

using testing::HandshakeBoth;
using testing::Identity;
using testing::kTlsTimeoutMs;
using testing::MakeContext;
using testing::MakeIdentity;

template <typename T>
void ExpectError(const std::optional<base::Result<T>>& r, base::Code code,
                 const std::string& text) {
  ASSERT_TRUE(r.has_value());
  ASSERT_FALSE(r->has_value()) << "expected " << text;
  EXPECT_EQ(r->error().code(), code) << r->error().ToString();
  EXPECT_NE(r->error().message().find(text), std::string::npos) << r->error().message();
}

class TlsHandshakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    a_ = MakeIdentity(dir_, "host-a");
    b_ = MakeIdentity(dir_, "host-b");
    c_ = MakeIdentity(dir_, "host-c");
    a_ctx_ = MakeContext(a_, {b_.fingerprint});
    b_ctx_ = MakeContext(b_, {a_.fingerprint});
    ASSERT_TRUE(a_ctx_ && b_ctx_);
  }

  ferry_test::TempDir dir_;
  Identity a_, b_, c_;
  std::shared_ptr<const TlsContext> a_ctx_, b_ctx_;
};

TEST_F(TlsHandshakeTest, PinnedBothWaysWithChannelBinding) {
  auto pair = testing::ConnectedPair();
  auto ends = HandshakeBoth(*a_ctx_, *b_ctx_, pair, b_.fingerprint, a_.fingerprint);
  ASSERT_TRUE(ends.client->has_value()) << ends.client->error().ToString();
  ASSERT_TRUE(ends.server->has_value()) << ends.server->error().ToString();
  const TlsPeer& at_client = (**ends.client)->peer();
  const TlsPeer& at_server = (**ends.server)->peer();
  EXPECT_EQ(at_client.fingerprint, b_.fingerprint);
  EXPECT_EQ(at_client.subject, "host-b");
  EXPECT_FALSE(at_client.verified_by_ca);
  EXPECT_EQ(at_server.fingerprint, a_.fingerprint);
  EXPECT_EQ(at_server.subject, "host-a");
  EXPECT_EQ(at_client.channel_binding, at_server.channel_binding);
  EXPECT_NE(at_client.channel_binding, (std::array<uint8_t, 32>{}));

  auto pair2 = testing::ConnectedPair();
  auto ends2 = HandshakeBoth(*a_ctx_, *b_ctx_, pair2);
  ASSERT_TRUE(ends2.client->has_value()) << ends2.client->error().ToString();
  ASSERT_TRUE(ends2.server->has_value()) << ends2.server->error().ToString();
  EXPECT_EQ((**ends2.client)->peer().channel_binding, (**ends2.server)->peer().channel_binding);
  EXPECT_NE((**ends2.client)->peer().channel_binding, at_client.channel_binding)
      << "two connections must not share a channel binding";
}

TEST_F(TlsHandshakeTest, CaSignedHosts) {
  auto ca = testing::MakeTestCa(dir_);
  if (!ca.ok) GTEST_SKIP() << "cannot make a test CA: " << ca.why;
  Identity x = ca.Issue("ca-host-x"), y = ca.Issue("ca-host-y");
  auto x_ctx = MakeContext(x, {}, ca.ca_file), y_ctx = MakeContext(y, {}, ca.ca_file);
  ASSERT_TRUE(x_ctx && y_ctx);
  auto pair = testing::ConnectedPair();
  auto ends = HandshakeBoth(*x_ctx, *y_ctx, pair, y.fingerprint);
  ASSERT_TRUE(ends.client->has_value()) << ends.client->error().ToString();
  ASSERT_TRUE(ends.server->has_value()) << ends.server->error().ToString();
  EXPECT_TRUE((**ends.client)->peer().verified_by_ca);
  EXPECT_TRUE((**ends.server)->peer().verified_by_ca);
  EXPECT_EQ((**ends.server)->peer().subject, "ca-host-x");

  // A self-signed host is not signed by the CA: refused by the CA host.
  auto a_ca = MakeContext(a_, {y.fingerprint});
  auto pair2 = testing::ConnectedPair();
  auto refused = HandshakeBoth(*a_ca, *y_ctx, pair2);
  ExpectError(refused.server, base::Code::kPermissionDenied,
              "peer certificate " + a_.fingerprint +
                  " (CN host-a) is not trusted: not pinned, and not signed by the trusted CA: ");
}

TEST_F(TlsHandshakeTest, ServerRefusesUnpinnedClient) {
  auto c_ctx = MakeContext(c_, {b_.fingerprint});  // c trusts b, b does not know c
  auto pair = testing::ConnectedPair();
  auto ends = HandshakeBoth(*c_ctx, *b_ctx_, pair);
  ExpectError(ends.server, base::Code::kPermissionDenied, "TLS handshake with 127.0.0.1:");
  ExpectError(ends.server, base::Code::kPermissionDenied,
              "peer certificate " + c_.fingerprint +
                  " (CN host-c) is not trusted: not pinned, and no CA is configured");
  // TLS 1.3: the client's handshake is complete before the server checks
  // its certificate; the client learns at its first read.
  if (ends.client->has_value()) {
    uint8_t buf[16];
    base::Result<TlsSession::IoResult> io = (**ends.client)->Read(buf, sizeof buf);
    for (int i = 0; i < 1000 && io.has_value() && io->wait != TlsSession::Wait::kNone; ++i) {
      ::poll(nullptr, 0, 5);
      io = (**ends.client)->Read(buf, sizeof buf);
    }
    ASSERT_FALSE(io.has_value());
    EXPECT_EQ(io.error().code(), base::Code::kPermissionDenied) << io.error().ToString();
    EXPECT_NE(io.error().message().find("peer refused our certificate"), std::string::npos)
        << io.error().message();
  }
}

TEST_F(TlsHandshakeTest, ClientRefusesUnpinnedServer) {
  auto c_ctx = MakeContext(c_, {a_.fingerprint});  // c trusts a, a does not know c
  auto pair = testing::ConnectedPair();
  auto ends = HandshakeBoth(*a_ctx_, *c_ctx, pair);
  ExpectError(ends.client, base::Code::kPermissionDenied,
              "peer certificate " + c_.fingerprint + " (CN host-c) is not trusted");
  ExpectError(ends.server, base::Code::kPermissionDenied, "peer refused our certificate");
}

TEST_F(TlsHandshakeTest, WrongExpectedFingerprint) {
  auto a_trusts_both = MakeContext(a_, {b_.fingerprint, c_.fingerprint});
  auto pair = testing::ConnectedPair();
  auto ends = HandshakeBoth(*a_trusts_both, *b_ctx_, pair, c_.fingerprint);
  ExpectError(ends.client, base::Code::kPermissionDenied,
              "peer certificate " + b_.fingerprint + " (CN host-b) is not trusted: not the " +
                  "expected host " + c_.fingerprint);
  // Any accepted spelling of the expected fingerprint works.
  std::string lower = b_.fingerprint;
  for (char& ch : lower) ch = char(std::tolower(ch));
  auto pair2 = testing::ConnectedPair();
  auto ok = HandshakeBoth(*a_trusts_both, *b_ctx_, pair2, lower);
  EXPECT_TRUE(ok.client->has_value()) << ok.client->error().ToString();
}

TEST_F(TlsHandshakeTest, ClientWithoutCertificate) {
  auto pair = testing::ConnectedPair();
  std::optional<base::Result<std::unique_ptr<TlsSession>>> server;
  std::thread t([&] {
    server.emplace(TlsAccept(*b_ctx_, pair.server.get(), "", kTlsTimeoutMs));
    ::shutdown(pair.server.get(), SHUT_RDWR);
  });
  // A TLS 1.3 client that has no certificate at all (ferry would never be).
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, pair.client.get());
  if (SSL_connect(ssl) == 1) {
    char buf[8];
    (void)SSL_read(ssl, buf, sizeof buf);  // the server's alert
  }
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  t.join();
  ExpectError(server, base::Code::kPermissionDenied, "peer sent no certificate");
}

TEST_F(TlsHandshakeTest, PlaintextFerryClientGetsAnErrorFrame) {
  auto pair = testing::ConnectedPair();
  std::optional<base::Result<std::unique_ptr<TlsSession>>> server;
  std::thread t([&] {
    server.emplace(TlsAccept(*b_ctx_, pair.server.get(), "", kTlsTimeoutMs));
    pair.server.Reset();
  });
  FrameStream plain(std::move(pair.client), "old peer");
  base::Result<HelloReply> reply = ClientHello(plain, Hello{}, kTlsTimeoutMs);
  plain.Shutdown();  // ends the server's drain
  t.join();
  ASSERT_FALSE(reply.has_value());
  EXPECT_EQ(reply.error().code(), base::Code::kPermissionDenied) << reply.error().ToString();
  EXPECT_TRUE(reply.error().from_peer());
  EXPECT_EQ(reply.error().peer_message(), "this host requires TLS on every peer connection");
  ExpectError(server, base::Code::kPermissionDenied,
              "peer does not speak TLS (plaintext ferry stream?): it sent a plaintext ferry "
              "frame");
}

TEST_F(TlsHandshakeTest, PlaintextFerryServerIsNamed) {
  auto pair = testing::ConnectedPair();
  std::thread t([&] {
    FrameStream plain(std::move(pair.server), "old server");
    (void)ServerHello(plain, kTlsTimeoutMs);  // answers our ClientHello with an Error frame
    DrainBeforeClose(plain.fd(), 1000);
  });
  auto client = TlsConnect(*a_ctx_, pair.client.get(), "", kTlsTimeoutMs);
  pair.client.Reset();  // ends the old server's drain
  t.join();
  ASSERT_FALSE(client.has_value());
  EXPECT_EQ(client.error().code(), base::Code::kPermissionDenied) << client.error().ToString();
  EXPECT_NE(client.error().message().find(
                "peer does not speak TLS (plaintext ferry stream?): peer: malformed frame header"),
            std::string::npos)
      << client.error().message();
}

TEST_F(TlsHandshakeTest, GarbageIsRefused) {
  auto pair = testing::ConnectedPair();
  ASSERT_TRUE(base::WriteAll(pair.client.get(), "GET / HTTP/1.0\r\n\r\n", 18).has_value());
  auto server = TlsAccept(*b_ctx_, pair.server.get(), "", kTlsTimeoutMs);
  ASSERT_FALSE(server.has_value());
  EXPECT_EQ(server.error().code(), base::Code::kPermissionDenied);
  EXPECT_NE(server.error().message().find("peer does not speak TLS (plaintext ferry stream?): "
                                          "its first bytes are 47 45 54 20"),
            std::string::npos)
      << server.error().message();
}

// The first bytes of a real ClientHello, made with OpenSSL in memory.
std::vector<uint8_t> ClientHelloBytes() {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, rbio, wbio);
  SSL_set_connect_state(ssl);
  (void)SSL_do_handshake(ssl);
  char* data = nullptr;
  long n = BIO_get_mem_data(wbio, &data);
  std::vector<uint8_t> out(data, data + n);
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  return out;
}

TEST_F(TlsHandshakeTest, TruncatedHandshake) {
  std::vector<uint8_t> hello = ClientHelloBytes();
  ASSERT_GT(hello.size(), 100u);
  auto pair = testing::ConnectedPair();
  ASSERT_TRUE(base::WriteAll(pair.client.get(), hello.data(), hello.size() / 2).has_value());
  pair.client.Reset();
  auto server = TlsAccept(*b_ctx_, pair.server.get(), "", kTlsTimeoutMs);
  ASSERT_FALSE(server.has_value());
  EXPECT_EQ(server.error().code(), base::Code::kDataLoss) << server.error().ToString();
  EXPECT_NE(server.error().message().find("truncated TLS handshake: the peer closed after " +
                                          std::to_string(hello.size() / 2) + " bytes"),
            std::string::npos)
      << server.error().message();
}

TEST_F(TlsHandshakeTest, SilentPeerTimesOut) {
  auto pair = testing::ConnectedPair();
  auto server = TlsAccept(*b_ctx_, pair.server.get(), "", 200);
  ASSERT_FALSE(server.has_value());
  EXPECT_EQ(server.error().code(), base::Code::kDeadlineExceeded) << server.error().ToString();
  EXPECT_NE(server.error().message().find("timed out waiting for the peer"), std::string::npos);
  // And a client whose server never answers.
  auto client = TlsConnect(*a_ctx_, pair.client.get(), "", 200);
  ASSERT_FALSE(client.has_value());
  EXPECT_EQ(client.error().code(), base::Code::kDeadlineExceeded) << client.error().ToString();
}

TEST_F(TlsHandshakeTest, Cancel) {
  auto pair = testing::ConnectedPair();
  auto cancel = base::EventFd::Create();
  ASSERT_TRUE(cancel.has_value());
  std::thread t([&] { (void)cancel->Signal(); });
  auto server = TlsAccept(*b_ctx_, pair.server.get(), "", kTlsTimeoutMs, cancel->fd());
  t.join();
  ASSERT_FALSE(server.has_value());
  EXPECT_EQ(server.error().code(), base::Code::kCancelled) << server.error().ToString();
  auto client = TlsConnect(*a_ctx_, pair.client.get(), "", kTlsTimeoutMs, cancel->fd());
  ASSERT_FALSE(client.has_value());
  EXPECT_EQ(client.error().code(), base::Code::kCancelled) << client.error().ToString();
}

}  // namespace
}  // namespace transport
