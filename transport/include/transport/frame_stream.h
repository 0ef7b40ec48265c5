// FrameStream: frames (frame.h) over one connected stream socket, with
// sequence numbers, CRC32C, optional zstd compression, per-call timeouts and
// cancellation, and byte counters for progress reports.
//
// Threads: one thread may Send while another Receives on the same stream.
// Two concurrent Sends (SendError included), or two concurrent Receives, are
// not allowed: a frame is written with several system calls and would
// interleave. counters(), fd(), name() and Shutdown() may be called from any
// thread.
//
// Receive never answers on its own (that would be a second sender): on a
// kDataLoss error the owner of the sending side calls SendError with it and
// closes the stream, so the peer learns why (docs/protocol.md).
//
// Not movable (it holds atomics and may be shared by two threads); keep it in
// a std::unique_ptr where it must move.
//
// A Send or Receive that fails after part of a frame went through (timeout,
// cancel, I/O error) leaves that direction mid-frame; every later call in
// that direction fails with kFailedPrecondition. A timeout or cancel before
// the first byte leaves the stream usable, so a receiver can poll with short
// timeouts. Over TLS a Send that times out or is cancelled always breaks the
// sending direction: OpenSSL may already have sealed part of the frame into
// a record it still holds.
//
// TLS: given a TlsSession (tls.h, established on the same socket), every
// frame byte travels through it; the frames, checks and counters (plaintext
// frame bytes) are the same as on a plain stream.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "transport/frame.h"
#include "transport/hello.h"
#include "transport/tls.h"

namespace transport {

class Compressor;
class Deadline;  // private (src/socket_wait.h)

struct Frame {
  uint16_t type = 0;
  uint32_t flags = 0;  // as received; kFlagCompressed tells how it travelled
  uint64_t sequence = 0;
  std::vector<uint8_t> payload;  // decompressed
};

struct StreamCounters {
  uint64_t frames_sent = 0;
  uint64_t bytes_sent = 0;          // frame bytes, headers included (before TLS)
  uint64_t payload_bytes_sent = 0;  // before compression
  uint64_t frames_received = 0;
  uint64_t bytes_received = 0;  // frame bytes, headers included (after TLS)
};

class FrameStream {
 public:
  // Takes a connected stream socket (TCP or a socketpair). name is prefixed
  // to every error ("stream 2 to 127.0.0.2:7431: connection closed by peer").
  FrameStream(base::Fd socket, std::string name);
  // The same over an established TLS session on socket (TlsConnect /
  // TlsAccept); the stream owns both.
  FrameStream(base::Fd socket, std::string name, std::unique_ptr<TlsSession> tls);
  FrameStream(const FrameStream&) = delete;
  FrameStream& operator=(const FrameStream&) = delete;

  // Sends one frame whose payload is a followed by b (two spans so a caller
  // can send a small header part and a large data part without copying).
  // Sequence numbers start at 0 and increase by 1 per frame sent. If
  // compressor != nullptr it decides per frame whether to compress (and the
  // frame then carries kFlagCompressed); it is told the send time. Blocks
  // until the frame is handed to the kernel, polling cancel_fd (-1: none;
  // kCancelled) and timing out after timeout_ms for the whole frame (-1:
  // never; kDeadlineExceeded).
  // Errors: kInvalidArgument for type 0 or a payload over kMaxFramePayload;
  // kUnavailable for a closed or reset connection; all name the stream.
  base::Status Send(uint16_t type, std::span<const uint8_t> a, std::span<const uint8_t> b = {},
                    Compressor* compressor = nullptr, int cancel_fd = -1, int timeout_ms = -1);

  // Receives one frame: checks the header (DecodeFrameHeader with
  // max_payload), the CRC, that the sequence is the expected one (kDataLoss
  // "frame out of sequence: expected N, got M"), that the header version is
  // the negotiated one once set_version was called, and decompresses (the
  // zstd frame must declare its size, and it must be <= max_payload).
  // EOF before a frame: kUnavailable "connection closed by peer"; EOF inside
  // one: kDataLoss "truncated frame". cancel_fd/timeout_ms as in Send.
  // An Error frame is returned like any other frame; the caller decides
  // (DecodeErrorPayload).
  base::Result<Frame> Receive(uint32_t max_payload, int cancel_fd = -1, int timeout_ms = -1);

  // Best effort: sends an Error frame with e, giving up after 1 s. Used when
  // aborting a stream; the result is deliberately ignored (the stream is
  // going away either way).
  void SendError(const base::Error& e);

  // shutdown(SHUT_RDWR): a Receive or Send blocked in another thread returns
  // (kUnavailable) at once, and the peer sees EOF.
  void Shutdown();

  // The header version stamped on sent frames and required on received ones
  // (ClientHello/ServerHello set it to the negotiated version). Until set,
  // frames go out as kHelloFrameVersion and any supported version is accepted.
  void set_version(uint16_t version) { version_ = version; }
  uint16_t version() const { return version_; }

  StreamCounters counters() const;  // thread-safe
  int fd() const { return socket_.get(); }
  // Who the peer proved to be; nullptr on a plain stream.
  const TlsPeer* tls_peer() const { return tls_ ? &tls_->peer() : nullptr; }
  const std::string& name() const { return name_; }

 private:
  base::Status SendFrame(uint16_t type, uint32_t flags, std::span<const uint8_t> a,
                         std::span<const uint8_t> b, int cancel_fd, int timeout_ms);
  // Reads exactly n bytes of the current frame; done counts the frame's bytes
  // read before this call (to tell EOF between frames from truncation).
  base::Status ReadExact(uint8_t* p, size_t n, size_t done, int cancel_fd, const Deadline& d);
  // The TLS halves of SendFrame and ReadExact.
  base::Status SendTls(const uint8_t* header, std::span<const uint8_t> a,
                       std::span<const uint8_t> b, int cancel_fd, const Deadline& deadline);
  base::Status WriteTls(std::span<const uint8_t> bytes, int cancel_fd, const Deadline& deadline);
  // One Read of at most n bytes; 0 at EOF.
  base::Result<size_t> ReadTls(uint8_t* p, size_t n, int cancel_fd, const Deadline& deadline);
  base::Error Named(const base::Error& e) const { return e.Wrap(name_); }

  base::Fd socket_;
  // Declared after socket_, so the session goes first (it uses the socket).
  std::unique_ptr<TlsSession> tls_;
  std::string name_;
  // 0 = not negotiated yet. Written only by the hello exchange, which runs
  // before any other thread uses the stream.
  uint16_t version_ = 0;
  uint64_t next_send_sequence_ = 0;      // owned by the sending thread
  uint64_t next_receive_sequence_ = 0;   // owned by the receiving thread
  bool send_broken_ = false;             // a frame was half sent
  bool receive_broken_ = false;          // a frame was half received
  std::vector<uint8_t> send_buffer_;     // compressed output, sender's thread
  std::vector<uint8_t> tls_coalesced_;   // a small frame in one TLS write, sender's thread
  std::vector<uint8_t> receive_buffer_;  // compressed input, receiver's thread
  std::atomic<bool> shut_down_{false};
  std::atomic<uint64_t> frames_sent_{0};
  std::atomic<uint64_t> bytes_sent_{0};
  std::atomic<uint64_t> payload_bytes_sent_{0};
  std::atomic<uint64_t> frames_received_{0};
  std::atomic<uint64_t> bytes_received_{0};
};

// Client side of the opening: sends hello, waits up to timeout_ms for the
// reply. On a HelloReply whose version lies in [hello.min_version,
// hello.max_version] sets the stream's version and returns the reply; on an
// Error frame returns the peer's error (DecodeErrorPayload: "peer: ...");
// anything else is kDataLoss.
base::Result<HelloReply> ClientHello(FrameStream& stream, const Hello& hello, int timeout_ms);

// Server side: receives the first frame (waiting up to timeout_ms),
// negotiates (NegotiateVersion), replies with a HelloReply and sets the
// stream's version, and returns the peer's hello. Every opening it refuses is
// answered with an Error frame before the error is returned, so a peer learns
// why (docs/protocol.md "Opening a stream"):
//  - bytes that are not a frame (bad magic, refused as soon as 4 bytes are
//    in), a header that fails its checks (a length over kMaxHelloPayload is
//    refused from the header alone, before any payload is read), a bad CRC,
//    a frame that is not a well-formed hello: kDataLoss with that reason;
//  - no common version: kFailedPrecondition;
//  - no whole hello within timeout_ms (an idle or trickling peer):
//    kDeadlineExceeded "no complete hello within N ms (received K bytes)";
//  - cancel_fd signalled: kUnavailable "the listener is shutting down"
//    (kCancelled is returned).
// A peer that closed or reset the connection gets nothing (kUnavailable).
// The caller then closes the stream; reading what the peer still sends
// before the close keeps the error frame from being destroyed by a reset.
base::Result<Hello> ServerHello(FrameStream& stream, int timeout_ms, int cancel_fd = -1);

}  // namespace transport
