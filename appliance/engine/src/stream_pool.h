// StreamPool: the N data streams of a live move's source side
// (docs/live_move.md "The data plane"), each with its own sender thread.
//
// Every stream has two bounded FIFO lanes, memory (page batches) and disk
// (extents, layer chunks), served by deficit round robin so neither starves
// the other; all senders take their bytes from one shared RateLimiter (the
// move's bandwidth limit) and compress through their own Compressor. A lane
// is FIFO and a given page or block always goes to the same lane of the same
// stream, so two writes of the same place arrive in the order they were
// queued: that is the whole ordering guarantee the destination relies on.
//
// The first send error fails the pool: the other senders stop and later
// Enqueue calls return that error. The sockets stay open until the owner
// shuts them down, so stream 0 can still be read for the destination's error.
//
// Threads: Enqueue may be called from any thread (the move thread, the
// mirror threads, guest I/O threads writing through a PeerSink); it blocks
// while the lane is full (back-pressure). SendDirect is for the move thread
// after Drain. The streams are owned by the pool; stream 0's receive side is
// left to the caller (FrameStream allows one receiver beside the sender).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "base/event_fd.h"
#include "base/mutex.h"
#include "base/result.h"
#include "protocol/live_move_types.h"
#include "protocol/move_protocol.h"
#include "transport/compressor.h"
#include "transport/frame_stream.h"
#include "transport/rate_limiter.h"

namespace appliance {

enum class Lane { kMemory = 0, kDisk = 1 };

// One frame waiting to be sent: payload = head followed by data.
struct OutFrame {
  MoveFrame type = MoveFrame::kPageBatch;
  std::vector<uint8_t> head;
  std::vector<uint8_t> data;
  size_t bytes() const { return head.size() + data.size(); }
};

class StreamPool {
 public:
  struct Options {
    std::vector<std::unique_ptr<transport::FrameStream>> streams;  // connected, hello done
    uint64_t bandwidth_limit = 0;  // bytes/s for all streams together; 0 none
    bool compression = true;
    // Queued bytes per lane before Enqueue blocks (a lone frame larger than
    // this is still accepted into an empty lane).
    size_t lane_bytes = 8 << 20;
    // A frame not handed to the kernel within this long fails the pool.
    int send_timeout_ms = 60000;
  };

  static base::Result<std::unique_ptr<StreamPool>> Start(Options options);
  ~StreamPool();  // Stop()

  size_t size() const { return streams_.size(); }
  transport::FrameStream& stream(size_t i) { return *streams_[i]->stream; }

  // Queues a data frame on stream `stream`'s lane (counted in StreamEnd).
  // Blocks while the lane is full; returns the pool's error once failed,
  // kCancelled if cancel_fd (-1: none) is signalled while waiting.
  base::Status Enqueue(size_t stream, Lane lane, OutFrame frame, int cancel_fd = -1);
  // Waits until the given lanes (both if nullopt) of every stream are empty
  // and nothing is being sent. The pool's error, or kCancelled/kDeadlineExceeded.
  base::Status Drain(std::optional<Lane> lane, int cancel_fd, int timeout_ms);
  // Sends a control frame (StreamEnd, DeviceState, Abort) right away on
  // `stream`, serialised with its sender thread; not counted as data. Meant
  // for after Drain, so it follows every data frame queued before.
  base::Status SendDirect(size_t stream, MoveFrame type, std::span<const uint8_t> payload,
                          int cancel_fd, int timeout_ms);
  // Data frames stream `stream` has sent (what its StreamEnd declares).
  uint64_t data_frames(size_t stream) const;

  // Fails the pool with e (if not failed yet): stops every sender.
  void Fail(const base::Error& e);
  std::optional<base::Error> error() const;
  // Stops the sender threads (queued frames are dropped) and joins them.
  void Stop();

  std::vector<StreamReport> Reports() const;
  uint64_t wire_bytes() const;  // sum of bytes_sent over the streams
  // Bytes waiting in this lane of every stream (not yet handed to a sender):
  // what a switchover would still have to send of what was queued.
  uint64_t queued_bytes(Lane lane) const;

 private:
  struct Lanes {
    std::deque<OutFrame> q[2];
    size_t bytes[2] = {0, 0};
    int64_t deficit[2] = {0, 0};
    int next = 0;          // lane the round robin looks at first
    bool sending = false;  // a frame popped and not yet sent
  };
  struct Stream {
    std::unique_ptr<transport::FrameStream> stream;
    std::unique_ptr<transport::Compressor> compressor;
    base::Mutex send_mu;  // one Send at a time: sender thread vs SendDirect
    Lanes lanes;          // guarded by the pool's mu_
    std::atomic<uint64_t> data_frames{0};
    std::thread thread;
  };

  StreamPool(Options options, base::EventFd stop);
  void SenderLoop(size_t index);
  // Pops the next frame by deficit round robin; false when stopping.
  bool Next(Stream& s, OutFrame& out);

  Options options_;
  transport::RateLimiter limiter_;
  base::EventFd stop_;  // cancels senders' waits (rate limiter, sends)
  std::vector<std::unique_ptr<Stream>> streams_;

  mutable base::Mutex mu_;
  base::CondVar work_cv_;   // senders wait for frames
  base::CondVar space_cv_;  // enqueuers and drainers wait for space/empty
  bool stopping_ GUARDED_BY(mu_) = false;
  std::optional<base::Error> error_ GUARDED_BY(mu_);
};

}  // namespace appliance
