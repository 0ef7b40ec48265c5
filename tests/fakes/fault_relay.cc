#include "fakes/fault_relay.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "transport/tcp.h"

namespace appliance::testing {
namespace {

// send() with MSG_NOSIGNAL: a peer that went away must not SIGPIPE the test.
bool SendAll(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= size_t(w);
  }
  return true;
}

}  // namespace

FaultRelay::FaultRelay(base::Fd listen_fd, uint16_t port, std::string host, uint16_t target_port,
                       base::EventFd stop)
    : listen_fd_(std::move(listen_fd)),
      port_(port),
      target_host_(std::move(host)),
      target_port_(target_port),
      stop_(std::move(stop)) {}

base::Result<std::unique_ptr<FaultRelay>> FaultRelay::Start(const std::string& target_host,
                                                            uint16_t target_port) {
  ASSIGN_OR_RETURN(transport::TcpListener listener, transport::TcpListener::Bind("127.0.0.1", 0));
  ASSIGN_OR_RETURN(base::EventFd stop, base::EventFd::Create());
  const uint16_t port = listener.port();
  base::Fd fd(::dup(listener.fd()));
  std::unique_ptr<FaultRelay> r(
      new FaultRelay(std::move(fd), port, target_host, target_port, std::move(stop)));
  r->acceptor_ = std::thread([p = r.get()] { p->AcceptLoop(); });
  return r;
}

FaultRelay::~FaultRelay() {
  (void)stop_.Signal();
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::unique_ptr<Conn>> conns;
  {
    std::lock_guard lock(mu_);
    conns.swap(conns_);
  }
  for (auto& c : conns)
    if (c->pump.joinable()) c->pump.join();
}

void FaultRelay::AcceptLoop() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_.get(), POLLIN, 0}, {stop_.fd(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) continue;
    if (fds[1].revents & POLLIN) return;
    int c = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    base::Fd client(c);
    auto target = transport::TcpConnect(target_host_, target_port_, "", 5000, stop_.fd());
    if (!target) continue;  // the client sees EOF
    std::lock_guard lock(mu_);
    auto conn = std::make_unique<Conn>();
    conn->client = std::move(client);
    conn->target = std::move(*target);
    const size_t index = conns_.size();
    conns_.push_back(std::move(conn));
    conns_.back()->pump = std::thread([this, index] { Pump(index); });
  }
}

void FaultRelay::Pump(size_t index) {
  Conn* c;
  uint64_t generation;
  {
    std::lock_guard lock(mu_);
    c = conns_[index].get();
    generation = cut_generation_;
  }
  std::vector<uint8_t> buf(64 << 10);
  bool open[2] = {true, true};  // 0: client -> target, 1: target -> client
  while (open[0] || open[1]) {
    pollfd fds[3] = {{c->client.get(), short(open[0] ? POLLIN : 0), 0},
                     {c->target.get(), short(open[1] ? POLLIN : 0), 0},
                     {stop_.fd(), POLLIN, 0}};
    if (::poll(fds, 3, 20) < 0) continue;
    if (fds[2].revents & POLLIN) break;
    {
      std::lock_guard lock(mu_);
      if (cut_generation_ != generation) break;
    }
    for (int dir = 0; dir < 2; ++dir) {
      if (!open[dir] || !(fds[dir].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      int from = dir == 0 ? c->client.get() : c->target.get();
      int to = dir == 0 ? c->target.get() : c->client.get();
      size_t want = buf.size();
      bool truncate_now = false;
      if (dir == 0) {
        std::lock_guard lock(mu_);
        auto t = truncates_.find(index);
        if (t != truncates_.end()) {
          uint64_t done = c->forwarded.load();
          if (done >= t->second)
            truncate_now = true;
          else
            want = std::min<uint64_t>(want, t->second - done);
        }
      }
      if (truncate_now) {
        open[0] = open[1] = false;
        break;
      }
      ssize_t n = ::read(from, buf.data(), want);
      if (n <= 0) {
        ::shutdown(to, SHUT_WR);
        open[dir] = false;
        continue;
      }
      if (dir == 0) {
        const uint64_t start = c->forwarded.load();
        std::lock_guard lock(mu_);
        auto f = flips_.find(index);
        if (f != flips_.end() && f->second >= start && f->second < start + uint64_t(n)) {
          buf[f->second - start] ^= 0xff;
          flips_.erase(f);
        }
      }
      if (!SendAll(to, buf.data(), size_t(n))) {
        // The target went away: stop this direction but keep delivering
        // what it said before (its error frame) the other way.
        open[dir] = false;
        ::shutdown(from, SHUT_RD);
        if (dir == 1) open[0] = false;
        continue;
      }
      if (dir == 0) c->forwarded.fetch_add(uint64_t(n));
    }
  }
  ::shutdown(c->client.get(), SHUT_RDWR);
  ::shutdown(c->target.get(), SHUT_RDWR);
}

void FaultRelay::CutAll() {
  std::lock_guard lock(mu_);
  ++cut_generation_;
  for (auto& c : conns_) {
    ::shutdown(c->client.get(), SHUT_RDWR);
    ::shutdown(c->target.get(), SHUT_RDWR);
  }
}

void FaultRelay::FlipByte(size_t connection, uint64_t offset) {
  std::lock_guard lock(mu_);
  flips_[connection] = offset;
}

void FaultRelay::TruncateAfter(size_t connection, uint64_t bytes) {
  std::lock_guard lock(mu_);
  truncates_[connection] = bytes;
}

size_t FaultRelay::connections() const {
  std::lock_guard lock(mu_);
  return conns_.size();
}

uint64_t FaultRelay::bytes_forwarded(size_t connection) const {
  std::lock_guard lock(mu_);
  return connection < conns_.size() ? conns_[connection]->forwarded.load() : 0;
}

}  // namespace appliance::testing
