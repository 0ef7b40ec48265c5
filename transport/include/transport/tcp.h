// TCP for migration streams: a listener bound to one address of the
// migration network and an outgoing connect that can leave from a chosen
// local address. Every wait can be cancelled and has a timeout. All sockets
// are CLOEXEC and connected ones get the options in ConfigureStreamSocket.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>

#include "base/fd.h"
#include "base/result.h"

namespace transport {

struct PeerAddress {
  int family = 0;                     // AF_INET or AF_INET6
  std::array<uint8_t, 16> address{};  // network order; IPv4 uses the first 4 bytes
  uint16_t port = 0;
  std::string text;  // "127.0.0.2:41234", "[::1]:5"
};

// Socket buffers for bulk streams: enough for a few ms of a 10 Gb/s link.
inline constexpr int kStreamSocketBufferBytes = 4 << 20;

// TCP_NODELAY (frames are whole messages; Nagle would delay control frames),
// 4 MiB SO_SNDBUF/SO_RCVBUF, keepalive (10 s idle, 5 s interval, 3 probes) and
// TCP_USER_TIMEOUT 30 s, so a dead peer is noticed even while we only send.
base::Status ConfigureStreamSocket(int fd);

class TcpListener {
 public:
  // host is an IPv4 or IPv6 literal ("0.0.0.0" / "::" for any); port 0 picks
  // an ephemeral port (see port()). SO_REUSEADDR, backlog 64. Errors name
  // "host:port".
  static base::Result<TcpListener> Bind(const std::string& host, uint16_t port);

  uint16_t port() const { return port_; }
  const std::string& host() const { return host_; }
  int fd() const { return fd_.get(); }

  // Waits for one connection (cancel_fd -1: none, kCancelled; timeout_ms -1:
  // none, kDeadlineExceeded) and returns the configured socket and who it is.
  base::Result<std::pair<base::Fd, PeerAddress>> Accept(int cancel_fd, int timeout_ms);

 private:
  TcpListener(base::Fd fd, std::string host, uint16_t port)
      : fd_(std::move(fd)), host_(std::move(host)), port_(port) {}
  base::Fd fd_;
  std::string host_;
  uint16_t port_;
};

// Connects to host:port (an IP literal, or a name resolved with getaddrinfo,
// which may block on DNS without honouring cancel). source_host, if not "",
// is the local address to bind first, so traffic leaves from the migration
// network. Non-blocking connect polled with cancel_fd and timeout_ms.
// Refused/unreachable/reset: kUnavailable naming "host:port"; timeout:
// kDeadlineExceeded; cancel: kCancelled.
base::Result<base::Fd> TcpConnect(const std::string& host, uint16_t port,
                                  const std::string& source_host, int timeout_ms,
                                  int cancel_fd = -1);

// Ends a connection without a reset: shuts our sending side down, then reads
// and discards what the peer still sends until it closes or linger_ms pass
// (the caller closes fd after). Closing with unread bytes makes the kernel
// send a reset, which destroys what is still in flight to the peer, such as
// the error frame that just told it why it is refused.
void DrainBeforeClose(int fd, int linger_ms);

base::Result<PeerAddress> GetPeerAddress(int fd);
base::Result<PeerAddress> GetLocalAddress(int fd);

}  // namespace transport
