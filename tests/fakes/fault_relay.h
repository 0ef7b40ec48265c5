// FaultRelay: a TCP relay for tests that breaks connections on purpose.
// Listens on 127.0.0.1 (ephemeral port) and forwards every accepted
// connection to a target; the i-th accepted connection (0-based) is
// "connection i". Faults act on the client -> target direction:
//   - CutAll: closes every connection now (both sides see EOF/reset);
//   - FlipByte(i, K): the byte at offset K of connection i is inverted;
//   - TruncateAfter(i, K): after K bytes of connection i, both sides are
//     closed.
// Faults are armed before or while the bytes flow; offsets count from the
// first byte the client sent.
//
// Threads: one acceptor thread and one pump thread per connection; the
// public methods are thread-safe. The destructor closes everything and joins.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/event_fd.h"
#include "base/fd.h"
#include "base/result.h"

namespace appliance::testing {

class FaultRelay {
 public:
  static base::Result<std::unique_ptr<FaultRelay>> Start(const std::string& target_host,
                                                         uint16_t target_port);
  ~FaultRelay();

  uint16_t port() const { return port_; }
  void CutAll();
  void FlipByte(size_t connection, uint64_t offset);
  void TruncateAfter(size_t connection, uint64_t bytes);
  size_t connections() const;
  uint64_t bytes_forwarded(size_t connection) const;  // client -> target

 private:
  struct Conn {
    base::Fd client, target;
    std::atomic<uint64_t> forwarded{0};
    std::thread pump;
  };
  FaultRelay(base::Fd listen_fd, uint16_t port, std::string host, uint16_t target_port,
             base::EventFd stop);
  void AcceptLoop();
  void Pump(size_t index);

  base::Fd listen_fd_;
  uint16_t port_;
  std::string target_host_;
  uint16_t target_port_;
  base::EventFd stop_;  // ends every thread
  std::thread acceptor_;

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::map<size_t, uint64_t> flips_;      // connection -> offset
  std::map<size_t, uint64_t> truncates_;  // connection -> bytes
  uint64_t cut_generation_ = 0;
};

}  // namespace appliance::testing
