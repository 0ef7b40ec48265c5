#include "tls_plaintext.h"

#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "transport/frame.h"
#include "transport/hello.h"
#include "transport/tcp.h"

namespace transport {
namespace {

constexpr char kNotTls[] = "peer does not speak TLS (plaintext ferry stream?)";
constexpr char kRequiresTls[] = "this host requires TLS on every peer connection";
// How long the refused plaintext peer may take to read our Error frame and
// close; its hello is read and discarded meanwhile.
constexpr int kRefusalLingerMs = 500;

enum class FirstBytes { kNeedMore, kTls, kFerry, kOther };

// A TLS record starts with its content type (22 handshake, 21 alert) and the
// legacy version's major byte 3; a ferry frame with "FYRF".
FirstBytes Classify(const uint8_t* p, size_t n) {
  if (n == 0) return FirstBytes::kNeedMore;
  if (p[0] == 0x16 || p[0] == 0x15) {
    if (n < 2) return FirstBytes::kNeedMore;
    return p[1] == 0x03 ? FirstBytes::kTls : FirstBytes::kOther;
  }
  static constexpr uint8_t kMagic[4] = {'F', 'Y', 'R', 'F'};
  if (std::memcmp(p, kMagic, n < 4 ? n : 4) != 0) return FirstBytes::kOther;
  return n >= 4 ? FirstBytes::kFerry : FirstBytes::kNeedMore;
}

std::string HexBytes(const uint8_t* p, size_t n) {
  std::string out;
  char buf[4];
  for (size_t i = 0; i < n; ++i) {
    snprintf(buf, sizeof buf, i ? " %02x" : "%02x", p[i]);
    out += buf;
  }
  return out;
}

base::Error NotTls(const std::string& detail) {
  return base::Error(base::Code::kPermissionDenied, std::string(kNotTls) + ": " + detail);
}

// Peeks until the first bytes decide what the peer speaks. *got receives the
// bytes seen; an EOF before any byte returns kNeedMore with *got 0.
base::Result<FirstBytes> PeekFirst(int fd, int cancel_fd, const Deadline& deadline, uint8_t buf[4],
                                   size_t* got) {
  for (;;) {
    ssize_t r = ::recv(fd, buf, 4, MSG_PEEK | MSG_DONTWAIT);
    if (r == 0) {
      *got = 0;
      return FirstBytes::kNeedMore;
    }
    if (r < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err != EAGAIN && err != EWOULDBLOCK)
        return base::Error(base::Code::kUnavailable, "connection reset by peer", err);
      RETURN_IF_ERROR(WaitFor(fd, POLLIN, cancel_fd, deadline, "waiting for the peer"));
      continue;
    }
    *got = size_t(r);
    FirstBytes kind = Classify(buf, *got);
    if (kind != FirstBytes::kNeedMore) return kind;
    // A prefix that could still become either: the socket stays readable, so
    // poll for the peer's close and otherwise wait a little for the rest.
    pollfd p = {fd, POLLRDHUP, 0};
    if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP))) return FirstBytes::kOther;
    if (deadline.RemainingMs() == 0)
      return base::Error(base::Code::kDeadlineExceeded, "timed out waiting for the peer");
    if (cancel_fd >= 0) {
      pollfd c = {cancel_fd, POLLIN, 0};
      if (::poll(&c, 1, 1) > 0) return base::Error(base::Code::kCancelled, "cancelled");
    } else {
      timespec ms = {0, 1'000'000};
      ::nanosleep(&ms, nullptr);
    }
  }
}

void SendRefusalFrame(int fd) {
  std::vector<uint8_t> payload =
      EncodeErrorPayload(base::Error(base::Code::kPermissionDenied, kRequiresTls));
  FrameHeader h;
  h.version = kHelloFrameVersion;
  h.type = uint16_t(FrameType::kError);
  h.length = uint32_t(payload.size());
  std::vector<uint8_t> frame(kFrameHeaderBytes);
  EncodeFrameHeader(h, frame.data());
  h.crc32c = FrameCrc(frame.data(), payload);
  EncodeFrameHeader(h, frame.data());
  frame.insert(frame.end(), payload.begin(), payload.end());
  // Best effort: a few dozen bytes always fit an empty socket buffer.
  (void)::send(fd, frame.data(), frame.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  DrainBeforeClose(fd, kRefusalLingerMs);
}

// Reads exactly n bytes (consuming them) before the deadline.
bool ReadExactly(int fd, uint8_t* p, size_t n, const Deadline& deadline) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::recv(fd, p + got, n - got, MSG_DONTWAIT);
    if (r > 0) {
      got += size_t(r);
    } else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      return false;
    } else if (!WaitFor(fd, POLLIN, -1, deadline, "").has_value()) {
      return false;
    }
  }
  return true;
}

// The plaintext ferry peer's error frame, or nullopt when the reply is not
// a whole, well-formed Error frame.
std::optional<base::Error> ReadPeerError(int fd, const Deadline& deadline) {
  uint8_t header[kFrameHeaderBytes];
  if (!ReadExactly(fd, header, sizeof header, deadline)) return std::nullopt;
  base::Result<FrameHeader> h = DecodeFrameHeader(header, kMaxHelloPayload);
  if (!h.has_value() || h->type != uint16_t(FrameType::kError)) return std::nullopt;
  std::vector<uint8_t> payload(h->length);
  if (!ReadExactly(fd, payload.data(), payload.size(), deadline)) return std::nullopt;
  if (FrameCrc(header, payload) != h->crc32c) return std::nullopt;
  return DecodeErrorPayload(payload);
}

}  // namespace

base::Status ExpectTlsClient(int fd, int cancel_fd, const Deadline& deadline) {
  uint8_t buf[4];
  size_t got = 0;
  ASSIGN_OR_RETURN(FirstBytes kind, PeekFirst(fd, cancel_fd, deadline, buf, &got));
  if (kind == FirstBytes::kTls) return base::Ok();
  if (got == 0)
    return base::Error(base::Code::kUnavailable,
                       "connection closed by peer before the TLS handshake");
  if (kind == FirstBytes::kFerry) {
    SendRefusalFrame(fd);
    return NotTls("it sent a plaintext ferry frame, answered that this host requires TLS");
  }
  return NotTls("its first bytes are " + HexBytes(buf, got));
}

base::Status ExpectTlsServer(int fd, int cancel_fd, const Deadline& deadline) {
  uint8_t buf[4];
  size_t got = 0;
  ASSIGN_OR_RETURN(FirstBytes kind, PeekFirst(fd, cancel_fd, deadline, buf, &got));
  if (kind == FirstBytes::kTls || got == 0) return base::Ok();
  if (kind == FirstBytes::kFerry) {
    std::optional<base::Error> e = ReadPeerError(fd, deadline);
    if (!e) return NotTls("it answered with a plaintext ferry frame");
    // A ferry that refuses before any TLS (too many connections, or it
    // trusts nobody yet) says why in plaintext: its code is kept, so a
    // caller can tell "busy, retry" from "never".
    if (e->code() != base::Code::kDataLoss && e->code() != base::Code::kPermissionDenied)
      return base::Error(e->code(), "refused before TLS: " + e->message());
    return NotTls(e->message());
  }
  return NotTls("its first bytes are " + HexBytes(buf, got));
}

}  // namespace transport
