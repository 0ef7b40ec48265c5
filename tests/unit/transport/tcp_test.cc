// TcpListener / TcpConnect on loopback: addresses, options, refusals,
// timeouts and cancel.
#include "transport/tcp.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <thread>

#include "base/event_fd.h"
#include "transport_test_util.h"

namespace transport {
namespace {

constexpr int kTimeoutMs = 5000;

int GetInt(int fd, int level, int option) {
  int v = 0;
  socklen_t len = sizeof v;
  EXPECT_EQ(::getsockopt(fd, level, option, &v, &len), 0);
  return v;
}

TEST(TcpTest, ConnectAcceptAndAddresses) {
  auto listener = TcpListener::Bind("127.0.0.1", 0);
  ASSERT_TRUE(listener.has_value()) << listener.error().ToString();
  EXPECT_NE(listener->port(), 0);
  EXPECT_EQ(listener->host(), "127.0.0.1");
  auto client = TcpConnect("127.0.0.1", listener->port(), "127.0.0.1", kTimeoutMs);
  ASSERT_TRUE(client.has_value()) << client.error().ToString();
  auto accepted = listener->Accept(-1, kTimeoutMs);
  ASSERT_TRUE(accepted.has_value()) << accepted.error().ToString();
  auto& [server, peer] = *accepted;

  auto local = GetLocalAddress(client->get());
  ASSERT_TRUE(local.has_value());
  EXPECT_EQ(peer.family, AF_INET);
  EXPECT_EQ(peer.port, local->port);
  EXPECT_EQ(peer.text, "127.0.0.1:" + std::to_string(local->port));
  EXPECT_EQ(peer.address[0], 127);
  EXPECT_EQ(peer.address[3], 1);
  auto remote = GetPeerAddress(client->get());
  ASSERT_TRUE(remote.has_value());
  EXPECT_EQ(remote->text, "127.0.0.1:" + std::to_string(listener->port()));

  for (int fd : {client->get(), server.get()}) {
    EXPECT_EQ(GetInt(fd, IPPROTO_TCP, TCP_NODELAY), 1);
    EXPECT_EQ(GetInt(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
    // The kernel reports double the requested size (bookkeeping overhead),
    // capped by net.core.*mem_max; at least it must not be the tiny default.
    EXPECT_GE(GetInt(fd, SOL_SOCKET, SO_SNDBUF), 200 * 1024);
  }
  // Data flows.
  ASSERT_TRUE(base::WriteAll(client->get(), "hi", 2).has_value());
  char buf[2];
  ASSERT_EQ(*base::ReadFull(server.get(), buf, 2), 2u);
}

TEST(TcpTest, SourceAddressIsUsed) {
  // 127.0.0.0/8 is all loopback: leave from .2 towards .1.
  auto listener = TcpListener::Bind("127.0.0.1", 0);
  ASSERT_TRUE(listener.has_value());
  auto client = TcpConnect("127.0.0.1", listener->port(), "127.0.0.2", kTimeoutMs);
  ASSERT_TRUE(client.has_value()) << client.error().ToString();
  auto accepted = listener->Accept(-1, kTimeoutMs);
  ASSERT_TRUE(accepted.has_value());
  EXPECT_EQ(accepted->second.text.rfind("127.0.0.2:", 0), 0u) << accepted->second.text;
}

TEST(TcpTest, Ipv6Loopback) {
  auto listener = TcpListener::Bind("::1", 0);
  if (!listener.has_value()) GTEST_SKIP() << "no IPv6 loopback: " << listener.error().ToString();
  auto client = TcpConnect("::1", listener->port(), "", kTimeoutMs);
  ASSERT_TRUE(client.has_value()) << client.error().ToString();
  auto accepted = listener->Accept(-1, kTimeoutMs);
  ASSERT_TRUE(accepted.has_value());
  EXPECT_EQ(accepted->second.family, AF_INET6);
  EXPECT_EQ(accepted->second.text.rfind("[::1]:", 0), 0u) << accepted->second.text;
}

TEST(TcpTest, ClosedPortIsUnavailableNamingHostPort) {
  uint16_t port;
  {
    auto listener = TcpListener::Bind("127.0.0.1", 0);
    ASSERT_TRUE(listener.has_value());
    port = listener->port();
  }  // closed: nothing listens there now
  auto client = TcpConnect("127.0.0.1", port, "", kTimeoutMs);
  ASSERT_FALSE(client.has_value());
  EXPECT_EQ(client.error().code(), base::Code::kUnavailable);
  EXPECT_NE(client.error().message().find("127.0.0.1:" + std::to_string(port)), std::string::npos)
      << client.error().message();
}

TEST(TcpTest, BadAddressesAreInvalidArguments) {
  auto listener = TcpListener::Bind("not-an-address", 7431);
  ASSERT_FALSE(listener.has_value());
  EXPECT_EQ(listener.error().code(), base::Code::kInvalidArgument);
  EXPECT_NE(listener.error().message().find("not-an-address:7431"), std::string::npos);
  auto client = TcpConnect("127.0.0.1", 1, "::1", kTimeoutMs);
  ASSERT_FALSE(client.has_value());
  EXPECT_EQ(client.error().code(), base::Code::kInvalidArgument);
}

TEST(TcpTest, BindingAPortInUseNamesIt) {
  // Without SO_REUSEPORT a second listener on the same port fails.
  auto first = TcpListener::Bind("127.0.0.1", 0);
  ASSERT_TRUE(first.has_value());
  auto second = TcpListener::Bind("127.0.0.1", first->port());
  ASSERT_FALSE(second.has_value());
  EXPECT_NE(second.error().message().find("127.0.0.1:" + std::to_string(first->port())),
            std::string::npos);
}

// A listener whose accept queue is full drops SYNs, so connecting to it
// hangs until our timeout or cancel: no unroutable address needed.
struct FullListener {
  FullListener() {
    fd = base::Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd.get(), 0), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
    // Fill the queue (backlog 0 holds one connection) until a connect hangs:
    // from then on SYNs are dropped.
    for (int i = 0; i < 8; ++i) {
      auto c = TcpConnect("127.0.0.1", port, "", 50);
      if (!c.has_value()) break;
      fillers.push_back(std::move(*c));
    }
  }
  base::Fd fd;
  uint16_t port = 0;
  std::vector<base::Fd> fillers;
};

TEST(TcpTest, ConnectTimesOut) {
  FullListener full;
  auto client = TcpConnect("127.0.0.1", full.port, "", 100);
  ASSERT_FALSE(client.has_value());
  EXPECT_EQ(client.error().code(), base::Code::kDeadlineExceeded) << client.error().ToString();
  EXPECT_NE(client.error().message().find("127.0.0.1:" + std::to_string(full.port)),
            std::string::npos);
}

TEST(TcpTest, ConnectIsCancelled) {
  FullListener full;
  auto cancel = base::EventFd::Create();
  ASSERT_TRUE(cancel.has_value());
  std::thread canceller([&] { ASSERT_TRUE(cancel->Signal().has_value()); });
  auto client = TcpConnect("127.0.0.1", full.port, "", 10'000, cancel->fd());
  canceller.join();
  ASSERT_FALSE(client.has_value());
  EXPECT_EQ(client.error().code(), base::Code::kCancelled) << client.error().ToString();
}

TEST(TcpTest, AcceptTimeoutAndCancel) {
  auto listener = TcpListener::Bind("127.0.0.1", 0);
  ASSERT_TRUE(listener.has_value());
  auto r = listener->Accept(-1, 20);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), base::Code::kDeadlineExceeded);
  EXPECT_NE(r.error().message().find("accept on 127.0.0.1:"), std::string::npos);
  auto cancel = base::EventFd::Create();
  ASSERT_TRUE(cancel.has_value());
  ASSERT_TRUE(cancel->Signal().has_value());
  r = listener->Accept(cancel->fd(), -1);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), base::Code::kCancelled);
}

}  // namespace
}  // namespace transport
