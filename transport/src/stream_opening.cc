// The hello exchange that opens every stream (ClientHello / ServerHello).
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

}  // namespace

base::Result<HelloReply> ClientHello(FrameStream& stream, const Hello& hello, int timeout_ms) {
  std::vector<uint8_t> payload = EncodeHello(hello);
  RETURN_IF_ERROR(
      stream.Send(uint16_t(FrameType::kHello), payload, {}, nullptr, -1, timeout_ms));
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
  ASSIGN_OR_RETURN(Frame frame, stream.Receive(kMaxHelloPayload, cancel_fd, timeout_ms));
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
  RETURN_IF_ERROR(stream.Send(uint16_t(FrameType::kHelloReply), reply, {}, nullptr, cancel_fd,
                              timeout_ms));
  stream.set_version(*version);
  return hello;
}

}  // namespace transport
