#include "base/event_fd.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace base {

Result<EventFd> EventFd::Create() {
  int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return ErrnoError("eventfd");
  return EventFd(Fd(fd));
}

Status EventFd::Signal(uint64_t value) const {
  if (::write(fd_.get(), &value, sizeof value) != sizeof value) return ErrnoError("eventfd write");
  return Ok();
}

Result<uint64_t> EventFd::Consume() const {
  uint64_t v = 0;
  if (::read(fd_.get(), &v, sizeof v) != sizeof v) {
    if (errno == EAGAIN) return Error(Code::kUnavailable, "eventfd not signalled");
    return ErrnoError("eventfd read");
  }
  return v;
}

Result<bool> WaitReadable(int fd, int cancel_fd, int timeout_ms) {
  pollfd fds[2] = {{fd, POLLIN, 0}, {cancel_fd, POLLIN, 0}};
  int n = cancel_fd >= 0 ? 2 : 1;
  for (;;) {
    int r = ::poll(fds, nfds_t(n), timeout_ms);
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("poll");
    }
    if (r == 0) return Error(Code::kDeadlineExceeded, "timed out waiting for data");
    if (n == 2 && (fds[1].revents & POLLIN)) return Error(Code::kCancelled, "cancelled");
    return true;
  }
}

}  // namespace base
