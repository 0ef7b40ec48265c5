#include "socket_wait.h"

#include <poll.h>

#include <string>

#include "base/clock.h"

namespace transport {

Deadline::Deadline(int timeout_ms) {
  if (timeout_ms >= 0) at_ns_ = base::MonotonicNanos() + uint64_t(timeout_ms) * 1'000'000 + 1;
}

int Deadline::RemainingMs() const {
  if (at_ns_ == 0) return -1;
  uint64_t now = base::MonotonicNanos();
  if (now >= at_ns_) return 0;
  return int((at_ns_ - now + 999'999) / 1'000'000);
}

base::Status WaitFor(int fd, short events, int cancel_fd, const Deadline& deadline,
                     const char* what) {
  pollfd fds[2] = {{fd, events, 0}, {cancel_fd, POLLIN, 0}};
  nfds_t n = cancel_fd >= 0 ? 2 : 1;
  for (;;) {
    int r = ::poll(fds, n, deadline.RemainingMs());
    if (r < 0) {
      if (errno == EINTR) continue;
      return base::ErrnoError("poll");
    }
    // Cancel wins over readiness: a cancelled move must stop promptly even
    // when data keeps arriving.
    if (n == 2 && (fds[1].revents & POLLIN))
      return base::Error(base::Code::kCancelled, "cancelled");
    if (r > 0 && fds[0].revents != 0) return base::Ok();
    if (deadline.RemainingMs() == 0)
      return base::Error(base::Code::kDeadlineExceeded, std::string("timed out ") + what);
  }
}

}  // namespace transport
