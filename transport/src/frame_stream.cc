#include "transport/frame_stream.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstdio>
#include <string>

#include "base/clock.h"
#include "socket_wait.h"
#include "transport/compressor.h"

namespace transport {
namespace {

constexpr int kSendErrorTimeoutMs = 1000;
// A frame up to this size goes to TLS in one write (one record, usually),
// copied together; the header and a small first part of a larger frame are
// copied together too, and its large part is written in place.
constexpr size_t kTlsCoalesceBytes = 16 << 10;

short PollEvents(TlsSession::Wait wait) {
  return wait == TlsSession::Wait::kWritable ? POLLOUT : POLLIN;
}

base::Error Unavailable(const std::string& what) {
  return base::Error(base::Code::kUnavailable, what);
}

}  // namespace

FrameStream::FrameStream(base::Fd socket, std::string name)
    : socket_(std::move(socket)), name_(std::move(name)) {}

FrameStream::FrameStream(base::Fd socket, std::string name, std::unique_ptr<TlsSession> tls)
    : socket_(std::move(socket)), tls_(std::move(tls)), name_(std::move(name)) {}

StreamCounters FrameStream::counters() const {
  StreamCounters c;
  c.frames_sent = frames_sent_.load(std::memory_order_relaxed);
  c.bytes_sent = bytes_sent_.load(std::memory_order_relaxed);
  c.payload_bytes_sent = payload_bytes_sent_.load(std::memory_order_relaxed);
  c.frames_received = frames_received_.load(std::memory_order_relaxed);
  c.bytes_received = bytes_received_.load(std::memory_order_relaxed);
  return c;
}

void FrameStream::Shutdown() {
  shut_down_.store(true);
  ::shutdown(socket_.get(), SHUT_RDWR);
}

base::Status FrameStream::Send(uint16_t type, std::span<const uint8_t> a,
                               std::span<const uint8_t> b, Compressor* compressor, int cancel_fd,
                               int timeout_ms) {
  if (type == 0) return Named(base::Error(base::Code::kInvalidArgument, "frame type 0 is invalid"));
  uint64_t payload = a.size() + b.size();
  if (payload > kMaxFramePayload)
    return Named(base::Error(base::Code::kInvalidArgument, "payload of " + std::to_string(payload) +
                                                               " bytes over the maximum " +
                                                               std::to_string(kMaxFramePayload)));
  uint32_t flags = 0;
  if (compressor != nullptr && compressor->Compress(a, b, send_buffer_)) {
    a = send_buffer_;
    b = {};
    flags |= kFlagCompressed;
  }
  uint64_t start = base::MonotonicNanos();
  RETURN_IF_ERROR(SendFrame(type, flags, a, b, cancel_fd, timeout_ms));
  uint64_t wire = kFrameHeaderBytes + a.size() + b.size();
  if (compressor != nullptr) compressor->NoteSent(wire, base::MonotonicNanos() - start);
  frames_sent_.fetch_add(1, std::memory_order_relaxed);
  bytes_sent_.fetch_add(wire, std::memory_order_relaxed);
  payload_bytes_sent_.fetch_add(payload, std::memory_order_relaxed);
  return base::Ok();
}

base::Status FrameStream::SendFrame(uint16_t type, uint32_t flags, std::span<const uint8_t> a,
                                    std::span<const uint8_t> b, int cancel_fd, int timeout_ms) {
  if (send_broken_)
    return Named(base::Error(base::Code::kFailedPrecondition,
                             "cannot send: an earlier send failed mid-frame"));
  FrameHeader h;
  h.version = version_ != 0 ? version_ : kHelloFrameVersion;
  h.type = type;
  h.flags = flags;
  h.length = uint32_t(a.size() + b.size());
  h.sequence = next_send_sequence_;
  uint8_t header[kFrameHeaderBytes];
  EncodeFrameHeader(h, header);
  // Over TLS the CRC field is 0: AES-GCM already authenticates every byte,
  // and the CRC was a quarter of the CPU a TLS stream costs (FRAMES.md).
  h.crc32c = tls_ ? 0 : FrameCrc(header, a, b);
  EncodeFrameHeader(h, header);
  if (tls_) {
    RETURN_IF_ERROR(SendTls(header, a, b, cancel_fd, Deadline(timeout_ms)));
    ++next_send_sequence_;
    return base::Ok();
  }

  iovec iov[3] = {{header, sizeof header},
                  {const_cast<uint8_t*>(a.data()), a.size()},
                  {const_cast<uint8_t*>(b.data()), b.size()}};
  size_t total = sizeof header + a.size() + b.size();
  size_t sent = 0;
  Deadline deadline(timeout_ms);
  int first = 0;  // first iovec with bytes left
  while (sent < total) {
    msghdr msg{};
    msg.msg_iov = iov + first;
    msg.msg_iovlen = size_t(3 - first);
    // MSG_NOSIGNAL: a closed peer is an error value, not a SIGPIPE.
    ssize_t n = ::sendmsg(socket_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        base::Status waited =
            WaitFor(socket_.get(), POLLOUT, cancel_fd, deadline, "waiting to send");
        if (waited.has_value()) continue;
        send_broken_ = sent > 0;
        return Named(waited.error());
      }
      send_broken_ = true;
      if (shut_down_.load()) return Named(Unavailable("stream shut down"));
      if (err == EPIPE || err == ECONNRESET || err == ENOTCONN)
        return Named(Unavailable("connection closed by peer"));
      return Named(base::ErrnoError("send", err));
    }
    sent += size_t(n);
    // Advance the iovecs past what went out.
    size_t left = size_t(n);
    while (first < 3 && left >= iov[first].iov_len) {
      left -= iov[first].iov_len;
      iov[first].iov_len = 0;
      ++first;
    }
    if (first < 3) {
      iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  ++next_send_sequence_;
  return base::Ok();
}

base::Status FrameStream::SendTls(const uint8_t* header, std::span<const uint8_t> a,
                                  std::span<const uint8_t> b, int cancel_fd,
                                  const Deadline& deadline) {
  std::span<const uint8_t> head(header, kFrameHeaderBytes);
  size_t total = head.size() + a.size() + b.size();
  std::span<const uint8_t> parts[3] = {head, a, b};
  size_t merged = 1;  // parts[0..merged) are copied into one write
  if (total <= kTlsCoalesceBytes) {
    merged = 3;
  } else if (head.size() + a.size() <= kTlsCoalesceBytes) {
    merged = 2;
  }
  tls_coalesced_.clear();
  for (size_t i = 0; i < merged; ++i)
    tls_coalesced_.insert(tls_coalesced_.end(), parts[i].begin(), parts[i].end());
  parts[merged - 1] = tls_coalesced_;
  for (size_t i = merged - 1; i < 3; ++i) {
    if (parts[i].empty()) continue;
    base::Status st = WriteTls(parts[i], cancel_fd, deadline);
    if (!st.has_value()) {
      // Even a wait before the first byte: OpenSSL may hold a sealed record.
      send_broken_ = true;
      if (shut_down_.load()) return Named(Unavailable("stream shut down"));
      return Named(st.error());
    }
  }
  return base::Ok();
}

base::Status FrameStream::WriteTls(std::span<const uint8_t> bytes, int cancel_fd,
                                   const Deadline& deadline) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    ASSIGN_OR_RETURN(TlsSession::IoResult io,
                     tls_->Write(bytes.data() + sent, bytes.size() - sent));
    if (io.wait != TlsSession::Wait::kNone) {
      RETURN_IF_ERROR(
          WaitFor(socket_.get(), PollEvents(io.wait), cancel_fd, deadline, "waiting to send"));
      continue;
    }
    if (io.eof) return Unavailable("connection closed by peer");
    sent += io.bytes;
  }
  return base::Ok();
}

base::Result<size_t> FrameStream::ReadTls(uint8_t* p, size_t n, int cancel_fd,
                                          const Deadline& deadline) {
  for (;;) {
    ASSIGN_OR_RETURN(TlsSession::IoResult io, tls_->Read(p, n));
    if (io.eof) return size_t(0);
    if (io.wait == TlsSession::Wait::kNone) return io.bytes;
    RETURN_IF_ERROR(
        WaitFor(socket_.get(), PollEvents(io.wait), cancel_fd, deadline, "waiting for a frame"));
  }
}

void FrameStream::SendError(const base::Error& e) {
  std::vector<uint8_t> payload = EncodeErrorPayload(e);
  // Best effort by contract: the stream is being aborted whatever happens.
  (void)Send(uint16_t(FrameType::kError), payload, {}, nullptr, -1, kSendErrorTimeoutMs);
}

base::Status FrameStream::ReadExact(uint8_t* p, size_t n, size_t done, int cancel_fd,
                                    const Deadline& deadline) {
  size_t got = 0;
  while (got < n) {
    ssize_t r;
    if (tls_) {
      base::Result<size_t> read = ReadTls(p + got, n - got, cancel_fd, deadline);
      if (!read.has_value()) {
        if (shut_down_.load()) return Unavailable("stream shut down");
        return read.error();
      }
      r = ssize_t(*read);
    } else {
      r = ::recv(socket_.get(), p + got, n - got, MSG_DONTWAIT);
    }
    if (r > 0) {
      got += size_t(r);
      bytes_received_.fetch_add(uint64_t(r), std::memory_order_relaxed);
      continue;
    }
    if (r == 0) {
      if (shut_down_.load()) return Unavailable("stream shut down");
      if (done + got == 0) return Unavailable("connection closed by peer");
      return base::Error(base::Code::kDataLoss, "truncated frame: connection closed after " +
                                                    std::to_string(done + got) +
                                                    " bytes of the frame");
    }
    int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      RETURN_IF_ERROR(WaitFor(socket_.get(), POLLIN, cancel_fd, deadline, "waiting for a frame"));
      continue;
    }
    if (err == ECONNRESET || err == ENOTCONN) return Unavailable("connection reset by peer");
    return base::ErrnoError("recv", err);
  }
  return base::Ok();
}

base::Result<Frame> FrameStream::Receive(uint32_t max_payload, int cancel_fd, int timeout_ms) {
  if (receive_broken_)
    return Named(base::Error(base::Code::kFailedPrecondition,
                             "cannot receive: an earlier receive failed mid-frame"));
  // Every failure below leaves the stream at an unknown position (or holding
  // data we no longer trust), except a wait that ends before the first byte.
  receive_broken_ = true;
  Deadline deadline(timeout_ms);
  uint8_t header[kFrameHeaderBytes];
  uint64_t before = bytes_received_.load(std::memory_order_relaxed);
  // The first frame's magic is checked as soon as its 4 bytes are in: a
  // stream that is not ferry at all (an HTTP request, a port scanner) is
  // refused at once instead of after a header's worth of bytes, which a short
  // request never sends. Later frames are read in one call.
  const size_t first_part = next_receive_sequence_ == 0 ? 4 : sizeof header;
  base::Status got = ReadExact(header, first_part, 0, cancel_fd, deadline);
  if (got.has_value() && first_part < sizeof header) {
    if (base::Status magic = CheckFrameMagic(header); !magic.has_value())
      return Named(magic.error());
    got =
        ReadExact(header + first_part, sizeof header - first_part, first_part, cancel_fd, deadline);
  }
  if (!got.has_value()) {
    bool nothing_read = bytes_received_.load(std::memory_order_relaxed) == before;
    if (nothing_read && got.error().code() != base::Code::kUnavailable) receive_broken_ = false;
    return Named(got.error());
  }
  base::Result<FrameHeader> decoded = DecodeFrameHeader(header, max_payload);
  if (!decoded.has_value()) return Named(decoded.error());
  const FrameHeader& h = *decoded;

  Frame frame;
  frame.type = h.type;
  frame.flags = h.flags;
  frame.sequence = h.sequence;
  bool compressed = (h.flags & kFlagCompressed) != 0;
  std::vector<uint8_t>& wire = compressed ? receive_buffer_ : frame.payload;
  wire.resize(h.length);
  if (base::Status s = ReadExact(wire.data(), wire.size(), sizeof header, cancel_fd, deadline);
      !s.has_value())
    return Named(s.error());

  uint32_t crc = tls_ ? 0 : FrameCrc(header, wire);
  if (!tls_ && crc != h.crc32c) {
    char buf[96];
    snprintf(buf, sizeof buf, "frame CRC mismatch: header says 0x%08x, computed 0x%08x", h.crc32c,
             crc);
    return Named(base::Error(base::Code::kDataLoss, buf));
  }
  if (h.sequence != next_receive_sequence_)
    return Named(base::Error(base::Code::kDataLoss, "frame out of sequence: expected " +
                                                        std::to_string(next_receive_sequence_) +
                                                        ", got " + std::to_string(h.sequence)));
  if (version_ != 0 && h.version != version_)
    return Named(base::Error(base::Code::kDataLoss, "frame version " + std::to_string(h.version) +
                                                        " differs from the negotiated " +
                                                        std::to_string(version_)));
  if (compressed) {
    base::Status s = Decompress(receive_buffer_, max_payload, frame.payload);
    if (!s.has_value())
      return Named(s.error().Wrap("compressed frame " + std::to_string(h.sequence)));
  }
  ++next_receive_sequence_;
  frames_received_.fetch_add(1, std::memory_order_relaxed);
  receive_broken_ = false;
  return frame;
}

}  // namespace transport
