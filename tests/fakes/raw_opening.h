// A raw TCP peer for the listeners' opening checks (docs/protocol.md,
// "Opening a stream"): it sends bytes that are no proper opening (garbage, an
// HTTP request, a hello with a bad CRC, a header declaring 4 GiB) and returns
// the error frame the listener answered with, decoded by the transport codec.
// Shared by the PeerService and LiveMoveDestination tests.
#pragma once

#include <poll.h>
#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "transport/frame_stream.h"
#include "transport/hello.h"
#include "transport/tcp.h"
#include "transport/tls.h"

namespace appliance::test {

// Connects to 127.0.0.1:port, sends bytes (may be empty: an idle peer), and
// reads the listener's answer within timeout_ms (a hello reply before it is
// skipped: see below). Returns the decoded error
// frame ("peer: <reason>" with its code), or kInternal "no error frame: …"
// when the listener closed, answered something else or said nothing.
//
// With tls, the bytes go inside a TLS session opened with that context (a
// trusted peer that then misbehaves); without, in the clear.
inline base::Error RefusalOf(uint16_t port, const std::vector<uint8_t>& bytes,
                             int timeout_ms = 5000, const transport::TlsContext* tls = nullptr) {
  auto fd = transport::TcpConnect("127.0.0.1", port, "", 5000);
  if (!fd)
    return base::Error(base::Code::kInternal, "no error frame: connect: " + fd.error().ToString());
  std::unique_ptr<transport::TlsSession> session;
  if (tls != nullptr) {
    auto s = transport::TlsConnect(*tls, fd->get(), "", 5000);
    if (!s)
      return base::Error(base::Code::kInternal, "no error frame: TLS: " + s.error().ToString());
    session = *std::move(s);
    size_t sent = 0;
    while (sent < bytes.size()) {
      auto w = session->Write(bytes.data() + sent, bytes.size() - sent);
      if (!w) return base::Error(base::Code::kInternal, "no error frame: " + w.error().ToString());
      sent += w->bytes;
      if (w->wait != transport::TlsSession::Wait::kNone) {
        pollfd p{fd->get(),
                 short(w->wait == transport::TlsSession::Wait::kReadable ? POLLIN : POLLOUT), 0};
        ::poll(&p, 1, 1000);
      }
    }
  } else if (!bytes.empty() && !base::WriteAll(fd->get(), bytes.data(), bytes.size())) {
    return base::Error(base::Code::kInternal, "no error frame: could not send the test bytes");
  }
  transport::FrameStream stream(std::move(*fd), "raw test peer", std::move(session));
  auto frame = stream.Receive(transport::kMaxHelloPayload, -1, timeout_ms);
  // A well-formed hello refused for what it says (its role, its move) is
  // answered after the opening: a hello reply, then the error.
  if (frame && frame->type == uint16_t(transport::FrameType::kHelloReply))
    frame = stream.Receive(transport::kMaxHelloPayload, -1, timeout_ms);
  if (!frame)
    return base::Error(base::Code::kInternal, "no error frame: " + frame.error().ToString());
  if (frame->type != uint16_t(transport::FrameType::kError))
    return base::Error(base::Code::kInternal,
                       "no error frame: got frame type " + std::to_string(frame->type));
  return transport::DecodeErrorPayload(frame->payload);
}

// n random bytes from seed (std::mt19937_64: the same bytes on every run).
inline std::vector<uint8_t> GarbageBytes(uint64_t seed, size_t n) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = uint8_t(rng());
  return out;
}

inline std::vector<uint8_t> TextBytes(const std::string& text) {
  return {text.begin(), text.end()};
}

// A well-formed first frame: the hello of control stream 0 of 1 (role data
// when data is set), with its CRC XORed by crc_xor (nonzero: a bad CRC).
inline std::vector<uint8_t> HelloFrameBytes(uint32_t crc_xor = 0, bool data = false) {
  transport::Hello hello;
  hello.role = data ? transport::StreamRole::kData : transport::StreamRole::kControl;
  std::vector<uint8_t> payload = transport::EncodeHello(hello);
  transport::FrameHeader h;
  h.version = transport::kHelloFrameVersion;
  h.type = uint16_t(transport::FrameType::kHello);
  h.length = uint32_t(payload.size());
  std::vector<uint8_t> out(transport::kFrameHeaderBytes);
  transport::EncodeFrameHeader(h, out.data());
  h.crc32c = transport::FrameCrc(out.data(), payload) ^ crc_xor;
  transport::EncodeFrameHeader(h, out.data());
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

// Only the 32-byte header of a hello that declares `length` payload bytes.
inline std::vector<uint8_t> HelloHeaderBytes(uint32_t length) {
  transport::FrameHeader h;
  h.version = transport::kHelloFrameVersion;
  h.type = uint16_t(transport::FrameType::kHello);
  h.length = length;
  std::vector<uint8_t> out(transport::kFrameHeaderBytes);
  transport::EncodeFrameHeader(h, out.data());
  return out;
}

}  // namespace appliance::test
