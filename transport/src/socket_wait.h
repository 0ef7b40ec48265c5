// Deadlines and cancellable waits shared by the stream and TCP code.
#pragma once

#include <cstdint>

#include "base/result.h"

namespace transport {

// An absolute deadline from a per-call timeout in ms (-1: none).
class Deadline {
 public:
  explicit Deadline(int timeout_ms);
  // Milliseconds left for poll(): -1 for none, 0 when passed (rounded up so a
  // wait never spins with 0 while time remains).
  int RemainingMs() const;
  bool infinite() const { return at_ns_ == 0; }

 private:
  uint64_t at_ns_ = 0;  // 0: no deadline
};

// Waits until fd has any of events (POLLIN/POLLOUT; errors and hang-ups also
// end the wait, the next I/O call reports them), cancel_fd (-1: none) becomes
// readable (kCancelled), or the deadline passes (kDeadlineExceeded).
// what names the wait in the timeout message ("waiting to send").
base::Status WaitFor(int fd, short events, int cancel_fd, const Deadline& deadline,
                     const char* what);

}  // namespace transport
