#include "link_probe.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/fd.h"
#include "transport/tcp.h"

namespace bench {
namespace {

constexpr size_t kChunk = 1 << 20;
constexpr int kConnectTimeoutMs = 5000;

base::Status MakeBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) return base::ErrnoError("fcntl");
  return base::Ok();
}

// Random bytes (xorshift64*): nothing on the path can shrink them.
std::vector<uint8_t> Incompressible(size_t n) {
  std::vector<uint8_t> buf(n);
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    uint64_t v = x * 0x2545f4914f6cdd1dull;
    std::memcpy(&buf[i], &v, 8);
  }
  return buf;
}

}  // namespace

base::Result<LinkResult> MeasureLoopbackLink(uint32_t streams, uint64_t total_bytes) {
  if (streams == 0) return base::Error(base::Code::kInvalidArgument, "link probe: 0 streams");
  ASSIGN_OR_RETURN(transport::TcpListener listener, transport::TcpListener::Bind("127.0.0.1", 0));
  std::vector<base::Fd> senders, receivers;
  for (uint32_t i = 0; i < streams; ++i) {
    ASSIGN_OR_RETURN(base::Fd out,
                     transport::TcpConnect("127.0.0.1", listener.port(), "", kConnectTimeoutMs));
    ASSIGN_OR_RETURN(auto in, listener.Accept(-1, kConnectTimeoutMs));
    RETURN_IF_ERROR(MakeBlocking(out.get()));
    RETURN_IF_ERROR(MakeBlocking(in.first.get()));
    senders.push_back(std::move(out));
    receivers.push_back(std::move(in.first));
  }
  const std::vector<uint8_t> data = Incompressible(kChunk);
  const uint64_t per_stream = total_bytes / streams;
  std::atomic<uint64_t> received{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  uint64_t t0 = base::MonotonicNanos();
  for (uint32_t i = 0; i < streams; ++i) {
    threads.emplace_back([&, fd = senders[i].get()] {
      for (uint64_t left = per_stream; left > 0 && !failed;) {
        size_t n = size_t(std::min<uint64_t>(left, kChunk));
        if (!base::WriteAll(fd, data.data(), n)) failed = true;
        left -= n;
      }
      ::shutdown(fd, SHUT_WR);
    });
    threads.emplace_back([&, fd = receivers[i].get()] {
      std::vector<uint8_t> buf(kChunk);
      for (;;) {
        ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          if (n < 0) failed = true;
          return;
        }
        received += uint64_t(n);
      }
    });
  }
  for (auto& t : threads) t.join();
  double seconds = double(base::MonotonicNanos() - t0) / 1e9;
  if (failed || received != per_stream * streams)
    return base::Error(base::Code::kInternal, "link probe: a stream failed or lost bytes");
  return LinkResult{streams, received.load(), seconds};
}

}  // namespace bench
