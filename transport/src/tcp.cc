#include "transport/tcp.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstring>
#include <vector>

#include "base/clock.h"
#include "socket_address.h"
#include "socket_wait.h"

namespace transport {
namespace {

constexpr int kListenBacklog = 64;
constexpr int kKeepIdleSeconds = 10;
constexpr int kKeepIntervalSeconds = 5;
constexpr int kKeepProbes = 3;
constexpr int kUserTimeoutMs = 30'000;

base::Status SetInt(int fd, int level, int option, int value, const char* name) {
  if (::setsockopt(fd, level, option, &value, sizeof value) != 0)
    return base::ErrnoError(std::string("setsockopt ") + name);
  return base::Ok();
}

base::Status SetBlocking(int fd, bool blocking) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return base::ErrnoError("fcntl F_GETFL");
  flags = blocking ? (flags & ~O_NONBLOCK) : (flags | O_NONBLOCK);
  if (::fcntl(fd, F_SETFL, flags) != 0) return base::ErrnoError("fcntl F_SETFL");
  return base::Ok();
}

// Connection failures are kUnavailable whatever the errno (a peer that is
// down or unreachable may come back); the errno text stays in the message.
base::Error ConnectError(const std::string& target, int err) {
  base::Error e = base::ErrnoError("connect to " + target, err);
  if (err == ETIMEDOUT) return e;  // kDeadlineExceeded via errno mapping
  return base::Error(base::Code::kUnavailable, e.message(), err);
}

// One connect attempt to one resolved address.
base::Result<base::Fd> ConnectOne(const sockaddr_storage& addr, socklen_t len,
                                  const std::string& target, const std::string& source_host,
                                  const Deadline& deadline, int cancel_fd) {
  base::Fd fd(::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return base::ErrnoError("socket for " + target);
  // Buffer sizes must be set before connect: the window scale is fixed in SYN.
  RETURN_IF_ERROR(ConfigureStreamSocket(fd.get()));
  if (!source_host.empty()) {
    sockaddr_storage local;
    socklen_t local_len = 0;
    base::Status parsed = ParseIpLiteral(source_host, 0, local, local_len);
    if (!parsed.has_value()) return parsed.error().Wrap("source address for " + target);
    if (local.ss_family != addr.ss_family)
      return base::Error(
          base::Code::kInvalidArgument,
          "source address " + source_host + " is not of the same family as " + target);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&local), local_len) != 0)
      return base::ErrnoError("bind to source address " + source_host + " for " + target);
  }
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
    if (errno != EINPROGRESS) return ConnectError(target, errno);
    base::Status waited = WaitFor(fd.get(), POLLOUT, cancel_fd, deadline, "connecting");
    if (!waited.has_value()) return waited.error().Wrap("connect to " + target);
    int err = 0;
    socklen_t err_len = sizeof err;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &err_len) != 0)
      return base::ErrnoError("getsockopt SO_ERROR for " + target);
    if (err != 0) return ConnectError(target, err);
  }
  RETURN_IF_ERROR(SetBlocking(fd.get(), true));
  return fd;
}

}  // namespace

base::Status ConfigureStreamSocket(int fd) {
  RETURN_IF_ERROR(SetInt(fd, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY"));
  RETURN_IF_ERROR(SetInt(fd, SOL_SOCKET, SO_SNDBUF, kStreamSocketBufferBytes, "SO_SNDBUF"));
  RETURN_IF_ERROR(SetInt(fd, SOL_SOCKET, SO_RCVBUF, kStreamSocketBufferBytes, "SO_RCVBUF"));
  RETURN_IF_ERROR(SetInt(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE"));
  RETURN_IF_ERROR(SetInt(fd, IPPROTO_TCP, TCP_KEEPIDLE, kKeepIdleSeconds, "TCP_KEEPIDLE"));
  RETURN_IF_ERROR(SetInt(fd, IPPROTO_TCP, TCP_KEEPINTVL, kKeepIntervalSeconds, "TCP_KEEPINTVL"));
  RETURN_IF_ERROR(SetInt(fd, IPPROTO_TCP, TCP_KEEPCNT, kKeepProbes, "TCP_KEEPCNT"));
  RETURN_IF_ERROR(SetInt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, kUserTimeoutMs, "TCP_USER_TIMEOUT"));
  return base::Ok();
}

base::Result<TcpListener> TcpListener::Bind(const std::string& host, uint16_t port) {
  std::string target = HostPort(host, port);
  sockaddr_storage addr;
  socklen_t len = 0;
  base::Status parsed = ParseIpLiteral(host, port, addr, len);
  if (!parsed.has_value()) return parsed.error().Wrap("listen on " + target);
  // Non-blocking so Accept can poll with cancel and never block in accept()
  // when another thread took the connection first.
  base::Fd fd(::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return base::ErrnoError("socket for " + target);
  RETURN_IF_ERROR(SetInt(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR"));
  // Accepted sockets inherit the buffer sizes, which must be set before the
  // handshake for window scaling to use them.
  RETURN_IF_ERROR(SetInt(fd.get(), SOL_SOCKET, SO_RCVBUF, kStreamSocketBufferBytes, "SO_RCVBUF"));
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), len) != 0)
    return base::ErrnoError("bind " + target);
  if (::listen(fd.get(), kListenBacklog) != 0) return base::ErrnoError("listen on " + target);
  ASSIGN_OR_RETURN(PeerAddress local, GetLocalAddress(fd.get()));
  return TcpListener(std::move(fd), host, local.port);
}

base::Result<std::pair<base::Fd, PeerAddress>> TcpListener::Accept(int cancel_fd, int timeout_ms) {
  std::string target = HostPort(host_, port_);
  Deadline deadline(timeout_ms);
  for (;;) {
    base::Status waited =
        WaitFor(fd_.get(), POLLIN, cancel_fd, deadline, "waiting for a connection");
    if (!waited.has_value()) return waited.error().Wrap("accept on " + target);
    sockaddr_storage addr;
    socklen_t len = sizeof addr;
    int c = ::accept4(fd_.get(), reinterpret_cast<sockaddr*>(&addr), &len, SOCK_CLOEXEC);
    if (c < 0) {
      // The connection may have been reset before we took it, or taken by
      // another thread: wait again.
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
        continue;
      return base::ErrnoError("accept on " + target);
    }
    base::Fd conn(c);
    RETURN_IF_ERROR(ConfigureStreamSocket(conn.get()));
    ASSIGN_OR_RETURN(PeerAddress peer, ToPeerAddress(addr));
    return std::make_pair(std::move(conn), std::move(peer));
  }
}

base::Result<base::Fd> TcpConnect(const std::string& host, uint16_t port,
                                  const std::string& source_host, int timeout_ms, int cancel_fd) {
  std::string target = HostPort(host, port);
  Deadline deadline(timeout_ms);
  std::vector<std::pair<sockaddr_storage, socklen_t>> candidates;
  sockaddr_storage addr;
  socklen_t len = 0;
  if (ParseIpLiteral(host, port, addr, len).has_value()) {
    candidates.emplace_back(addr, len);
  } else {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
    addrinfo* res = nullptr;
    int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
    if (rc != 0)
      return base::Error(base::Code::kUnavailable, "resolve " + target + ": " + ::gai_strerror(rc));
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
      if (ai->ai_addrlen > sizeof(sockaddr_storage)) continue;
      sockaddr_storage a{};
      std::memcpy(&a, ai->ai_addr, ai->ai_addrlen);
      candidates.emplace_back(a, ai->ai_addrlen);
    }
    ::freeaddrinfo(res);
  }
  // Try each address in turn within the one deadline; report the last error.
  base::Error last(base::Code::kUnavailable, "connect to " + target + ": no address");
  for (const auto& [a, l] : candidates) {
    base::Result<base::Fd> fd = ConnectOne(a, l, target, source_host, deadline, cancel_fd);
    if (fd.has_value()) return fd;
    last = fd.error();
    if (last.code() != base::Code::kUnavailable) break;  // cancel, timeout, bad argument
  }
  return last;
}

base::Result<PeerAddress> GetPeerAddress(int fd) {
  sockaddr_storage addr;
  socklen_t len = sizeof addr;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return base::ErrnoError("getpeername");
  return ToPeerAddress(addr);
}

base::Result<PeerAddress> GetLocalAddress(int fd) {
  sockaddr_storage addr;
  socklen_t len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return base::ErrnoError("getsockname");
  return ToPeerAddress(addr);
}

void DrainBeforeClose(int fd, int linger_ms) {
  ::shutdown(fd, SHUT_WR);
  const uint64_t deadline = base::MonotonicNanos() + uint64_t(linger_ms) * 1'000'000;
  char buf[4096];
  for (;;) {
    const uint64_t now = base::MonotonicNanos();
    if (now >= deadline) return;
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, int((deadline - now) / 1'000'000) + 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return;
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return;
  }
}

}  // namespace transport
