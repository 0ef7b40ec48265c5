#include "stream_pool.h"

#include <poll.h>

#include <chrono>
#include <string>

#include "base/clock.h"
#include "base/log.h"

namespace appliance {
namespace {

// DRR quantum: each visit a non-empty lane may send this many bytes more.
constexpr int64_t kQuantum = 1 << 20;
// How often blocked Enqueue/Drain calls look at their cancel fd.
constexpr auto kPollSlice = std::chrono::milliseconds(20);

bool Signalled(int fd) {
  if (fd < 0) return false;
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

}  // namespace

StreamPool::StreamPool(Options options, base::EventFd stop)
    : options_(std::move(options)), limiter_(options_.bandwidth_limit), stop_(std::move(stop)) {}

base::Result<std::unique_ptr<StreamPool>> StreamPool::Start(Options options) {
  if (options.streams.empty()) return base::Error(base::Code::kInvalidArgument, "no data streams");
  ASSIGN_OR_RETURN(base::EventFd stop, base::EventFd::Create());
  std::unique_ptr<StreamPool> pool(new StreamPool(std::move(options), std::move(stop)));
  const size_t n = pool->options_.streams.size();
  for (size_t i = 0; i < n; ++i) {
    auto s = std::make_unique<Stream>();
    s->stream = std::move(pool->options_.streams[i]);
    s->compressor = std::make_unique<transport::Compressor>(pool->options_.compression);
    // The limiter waits outside Send, so tell the compressor what a stream
    // can get at most; otherwise it would think the link is faster.
    if (pool->options_.bandwidth_limit > 0)
      s->compressor->SetLinkCeiling(pool->options_.bandwidth_limit / n);
    pool->streams_.push_back(std::move(s));
  }
  pool->options_.streams.clear();
  for (size_t i = 0; i < n; ++i) {
    StreamPool* p = pool.get();
    pool->streams_[i]->thread = std::thread([p, i] { p->SenderLoop(i); });
  }
  return pool;
}

StreamPool::~StreamPool() { Stop(); }

void StreamPool::Stop() {
  {
    base::MutexLock lock(mu_);
    stopping_ = true;
    work_cv_.NotifyAll();
    space_cv_.NotifyAll();
  }
  // eventfd: fails only at counter overflow, readable then anyway.
  (void)stop_.Signal();
  for (auto& s : streams_)
    if (s->thread.joinable()) s->thread.join();
}

base::Status StreamPool::Enqueue(size_t stream, Lane lane, OutFrame frame, int cancel_fd) {
  Stream& s = *streams_[stream % streams_.size()];
  const int l = int(lane);
  base::MutexLock lock(mu_);
  for (;;) {
    if (error_) return *error_;
    if (stopping_) return base::Error(base::Code::kCancelled, "the move's streams are stopping");
    if (s.lanes.bytes[l] == 0 || s.lanes.bytes[l] + frame.bytes() <= options_.lane_bytes) break;
    space_cv_.WaitFor(mu_, kPollSlice);
    if (Signalled(cancel_fd)) return base::Error(base::Code::kCancelled, "cancelled");
  }
  s.lanes.bytes[l] += frame.bytes();
  s.lanes.q[l].push_back(std::move(frame));
  work_cv_.NotifyAll();
  return base::Ok();
}

base::Status StreamPool::Drain(std::optional<Lane> lane, int cancel_fd, int timeout_ms) {
  const uint64_t deadline =
      base::MonotonicNanos() + uint64_t(timeout_ms < 0 ? 0 : timeout_ms) * 1000000;
  base::MutexLock lock(mu_);
  for (;;) {
    if (error_) return *error_;
    bool empty = true;
    for (auto& s : streams_) {
      for (int l = 0; l < 2; ++l)
        if ((!lane || int(*lane) == l) && !s->lanes.q[l].empty()) empty = false;
      // A frame in flight may be of either lane; wait for it in both cases.
      if (s->lanes.sending) empty = false;
    }
    if (empty) return base::Ok();
    if (stopping_) return base::Error(base::Code::kCancelled, "the move's streams are stopping");
    space_cv_.WaitFor(mu_, kPollSlice);
    if (Signalled(cancel_fd)) return base::Error(base::Code::kCancelled, "cancelled");
    if (timeout_ms >= 0 && base::MonotonicNanos() > deadline)
      return base::Error(base::Code::kDeadlineExceeded, "the data streams did not drain within " +
                                                            std::to_string(timeout_ms) + " ms");
  }
}

base::Status StreamPool::SendDirect(size_t stream, MoveFrame type, std::span<const uint8_t> payload,
                                    int cancel_fd, int timeout_ms) {
  if (auto e = error()) return *e;
  Stream& s = *streams_[stream];
  base::MutexLock send_lock(s.send_mu);
  base::Status st = s.stream->Send(uint16_t(type), payload, {}, nullptr, cancel_fd, timeout_ms);
  if (!st) Fail(st.error());
  return st;
}

uint64_t StreamPool::data_frames(size_t stream) const {
  return streams_[stream]->data_frames.load();
}

void StreamPool::Fail(const base::Error& e) {
  {
    base::MutexLock lock(mu_);
    if (error_) return;
    error_ = e;
    work_cv_.NotifyAll();
    space_cv_.NotifyAll();
  }
  base::LogWarning("live move streams failed: " + e.ToString());
  // Cancels the other senders' waits. The sockets stay open: the
  // destination's reason for closing (an error frame on stream 0) may still
  // be waiting to be read; the owner closes them. (An eventfd write fails
  // only at counter overflow, when the fd is readable anyway.)
  (void)stop_.Signal();
}

std::optional<base::Error> StreamPool::error() const {
  base::MutexLock lock(mu_);
  return error_;
}

bool StreamPool::Next(Stream& s, OutFrame& out) {
  base::MutexLock lock(mu_);
  for (;;) {
    if (stopping_ || error_) return false;
    Lanes& ln = s.lanes;
    // Terminates: every visit to a non-empty lane adds a quantum of credit.
    while (!ln.q[0].empty() || !ln.q[1].empty()) {
      int l = ln.next;
      if (ln.q[l].empty()) {
        ln.deficit[l] = 0;  // an idle lane banks no credit
        ln.next = 1 - l;
        continue;
      }
      const int64_t size = int64_t(ln.q[l].front().bytes());
      if (ln.deficit[l] < size) {
        ln.deficit[l] += kQuantum;
        if (ln.deficit[l] < size) {
          ln.next = 1 - l;
          continue;
        }
      }
      ln.deficit[l] -= size;
      out = std::move(ln.q[l].front());
      ln.q[l].pop_front();
      ln.bytes[l] -= out.bytes();
      ln.sending = true;
      space_cv_.NotifyAll();
      return true;
    }
    work_cv_.Wait(mu_);
  }
}

void StreamPool::SenderLoop(size_t index) {
  std::string name = "move-send" + std::to_string(index);
  base::SetThreadName(name.c_str());
  Stream& s = *streams_[index];
  OutFrame frame;
  while (Next(s, frame)) {
    base::Status st = limiter_.Acquire(frame.bytes() + transport::kFrameHeaderBytes, stop_.fd());
    if (st) {
      base::MutexLock send_lock(s.send_mu);
      st = s.stream->Send(uint16_t(frame.type), frame.head, frame.data, s.compressor.get(),
                          stop_.fd(), options_.send_timeout_ms);
    }
    if (st) s.data_frames.fetch_add(1);
    {
      base::MutexLock lock(mu_);
      s.lanes.sending = false;
      space_cv_.NotifyAll();
    }
    if (!st) {
      // Cancelled by Stop/Fail: not this stream's failure.
      if (st.error().code() != base::Code::kCancelled) Fail(st.error());
      return;
    }
    frame = OutFrame();
  }
}

std::vector<StreamReport> StreamPool::Reports() const {
  std::vector<StreamReport> out;
  for (auto& s : streams_) {
    transport::StreamCounters c = s->stream->counters();
    out.push_back({c.bytes_sent, c.payload_bytes_sent, c.frames_sent});
  }
  return out;
}

uint64_t StreamPool::queued_bytes(Lane lane) const {
  base::MutexLock lock(mu_);
  uint64_t total = 0;
  for (auto& s : streams_) total += s->lanes.bytes[int(lane)];
  return total;
}

uint64_t StreamPool::wire_bytes() const {
  uint64_t total = 0;
  for (auto& s : streams_) total += s->stream->counters().bytes_sent;
  return total;
}

}  // namespace appliance
