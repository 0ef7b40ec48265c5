// Move-only eventfd: the way threads wake each other and the cancel signal
// every blocking wait also polls.
#pragma once

#include <cstdint>

#include "base/fd.h"

namespace base {

class EventFd {
 public:
  static Result<EventFd> Create();
  Status Signal(uint64_t value = 1) const;
  // Reads and clears the counter; kUnavailable if nothing was signalled.
  Result<uint64_t> Consume() const;
  int fd() const { return fd_.get(); }

 private:
  explicit EventFd(Fd fd) : fd_(std::move(fd)) {}
  Fd fd_;
};

// Waits until fd is readable or cancel_fd is signalled (-1: no cancel) or the
// timeout passes (-1: none). Returns true if fd is readable, kCancelled if
// cancelled, kDeadlineExceeded on timeout.
Result<bool> WaitReadable(int fd, int cancel_fd, int timeout_ms);

}  // namespace base
