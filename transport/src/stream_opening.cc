// The hello exchange that opens every stream (ClientHello / ServerHello).
#include <optional>
#include <string>

#include "transport/frame_stream.h"

namespace transport {
namespace {

std::string TypeName(uint16_t type) {
  switch (FrameType(type)) {
    case FrameType::kHello: return "hello";
    case FrameType::kHelloReply: return "hello reply";
    case FrameType::kError: return "error";
  }
  return "type " + std::to_string(type);
}

// The error frame that answers an opening the accepting side could not
// read, or nullopt when the peer is gone (closed or reset: nobody to tell).
// A malformed first frame is answered with its own error (without our
// stream's name: the peer names the stream itself); a peer too slow to send
// a whole hello with a deadline error; our own shutdown with kUnavailable,
// so the peer knows a retry may work.
std::optional<base::Error> OpeningRefusal(const FrameStream& stream, const base::Error& e,
                                          int timeout_ms) {
  switch (e.code()) {
    case base::Code::kUnavailable: return std::nullopt;
    case base::Code::kDeadlineExceeded:
      return base::Error(base::Code::kDeadlineExceeded,
                         "no complete hello within " + std::to_string(timeout_ms) +
                             " ms (received " + std::to_string(stream.counters().bytes_received) +
                             " bytes)");
    case base::Code::kCancelled:
      return base::Error(base::Code::kUnavailable, "the listener is shutting down");
    default: {
      const std::string prefix = stream.name() + ": ";
      if (e.message().compare(0, prefix.size(), prefix) == 0)
        return base::Error(e.code(), e.message().substr(prefix.size()), e.sys_errno());
      return e;
    }
  }
}

}  // namespace

base::Result<HelloReply> ClientHello(FrameStream& stream, const Hello& hello, int timeout_ms) {
  std::vector<uint8_t> payload = EncodeHello(hello);
  RETURN_IF_ERROR(stream.Send(uint16_t(FrameType::kHello), payload, {}, nullptr, -1, timeout_ms));
  ASSIGN_OR_RETURN(Frame frame, stream.Receive(kMaxHelloPayload, -1, timeout_ms));
  if (frame.type == uint16_t(FrameType::kError))
    return DecodeErrorPayload(frame.payload).Wrap(stream.name());
  if (frame.type != uint16_t(FrameType::kHelloReply)) {
    base::Error e(base::Code::kDataLoss,
                  "expected a hello reply, got a " + TypeName(frame.type) + " frame");
    stream.SendError(e);
    return e.Wrap(stream.name());
  }
  base::Result<HelloReply> reply = DecodeHelloReply(frame.payload);
  if (!reply.has_value()) {
    stream.SendError(reply.error());
    return reply.error().Wrap(stream.name());
  }
  if (reply->version < hello.min_version || reply->version > hello.max_version) {
    base::Error e(base::Code::kDataLoss,
                  "peer chose protocol version " + std::to_string(reply->version) +
                      ", which we did not offer (" + std::to_string(hello.min_version) + ".." +
                      std::to_string(hello.max_version) + ")");
    stream.SendError(e);
    return e.Wrap(stream.name());
  }
  stream.set_version(reply->version);
  return reply;
}

base::Result<Hello> ServerHello(FrameStream& stream, int timeout_ms, int cancel_fd) {
  base::Result<Frame> received = stream.Receive(kMaxHelloPayload, cancel_fd, timeout_ms);
  if (!received.has_value()) {
    if (std::optional<base::Error> refusal = OpeningRefusal(stream, received.error(), timeout_ms)) {
      stream.SendError(*refusal);
      if (received.error().code() == base::Code::kDeadlineExceeded)
        return refusal->Wrap(stream.name());
    }
    return received.error();
  }
  const Frame& frame = *received;
  if (frame.type != uint16_t(FrameType::kHello)) {
    base::Error e(base::Code::kDataLoss,
                  "expected a hello as the first frame, got a " + TypeName(frame.type) + " frame");
    stream.SendError(e);
    return e.Wrap(stream.name());
  }
  base::Result<Hello> hello = DecodeHello(frame.payload);
  if (!hello.has_value()) {
    stream.SendError(hello.error());
    return hello.error().Wrap(stream.name());
  }
  base::Result<uint16_t> version = NegotiateVersion(*hello);
  if (!version.has_value()) {
    stream.SendError(version.error());
    return version.error().Wrap(stream.name());
  }
  std::vector<uint8_t> reply = EncodeHelloReply(HelloReply{*version});
  RETURN_IF_ERROR(
      stream.Send(uint16_t(FrameType::kHelloReply), reply, {}, nullptr, cancel_fd, timeout_ms));
  stream.set_version(*version);
  return hello;
}

}  // namespace transport
